// Checks Koios with the PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java):
// DatabaseMetaData (its own pg_catalog queries), a PreparedStatement executed
// 10 times (the driver switches to a named server statement after
// prepareThreshold = 5 uses), and setFetchSize with autocommit off (a portal
// read a few rows per Execute).
//
// Build and run:
//   javac -cp /usr/share/java/postgresql.jar -d DIR tests/clients/jdbc/KoiosJdbc.java
//   java -cp /usr/share/java/postgresql.jar:DIR KoiosJdbc HOST PORT
// (the server serves the demo and the test fixtures as `pg` and `my`, as
// scripts/test.sh starts it; the URL's database picks the source)
// Prints one line per check and a closing 'N passed, N failed' line; exits 1
// when a check fails. BEST GUESS marks expectations that are Koios's choice.

import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.sql.Types;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

public class KoiosJdbc {
  static String host;
  static String port;
  static int passed = 0;
  static int failed = 0;

  interface Check {
    void run() throws Exception;
  }

  static void check(String name, Check c) {
    try {
      c.run();
      passed++;
      System.out.println("ok   " + name);
    } catch (Throwable e) {
      failed++;
      System.out.println("FAIL " + name + ": " + e);
    }
  }

  static void eq(Object actual, Object expected, String what) {
    if (expected == null ? actual != null : !expected.equals(actual)) {
      throw new AssertionError(what + ": expected <" + expected + ">, got <" + actual + ">");
    }
  }

  static Connection connect(String database) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", "koios");
    return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/" + database, p);
  }

  static final List<String> PG_TABLES =
      List.of("adversarial", "all_types", "collated", "inserts", "keyed_numbers", "nation_stats", "numbers",
          "quote_traps", "sentinel", "we\"ird\\ t\u00e5ble");

  public static void main(String[] args) {
    host = args[0];
    port = args[1];

    check("server version", () -> {
      try (Connection c = connect("pg")) {
        DatabaseMetaData md = c.getMetaData();
        eq(md.getDatabaseProductName(), "PostgreSQL", "product");
        if (!md.getDatabaseProductVersion().startsWith("15.")) {
          throw new AssertionError("version " + md.getDatabaseProductVersion());
        }
        eq(md.getDatabaseMajorVersion(), 15, "major version");
      }
    });

    check("DatabaseMetaData.getTables", () -> {
      try (Connection c = connect("pg")) {
        DatabaseMetaData md = c.getMetaData();
        try (ResultSet rs = md.getTables(null, "public", "nation_stats", new String[] {"TABLE"})) {
          if (!rs.next()) throw new AssertionError("nation_stats not found");
          eq(rs.getString("TABLE_SCHEM"), "public", "TABLE_SCHEM");
          eq(rs.getString("TABLE_NAME"), "nation_stats", "TABLE_NAME");
          eq(rs.getString("TABLE_TYPE"), "TABLE", "TABLE_TYPE");
          if (rs.next()) throw new AssertionError("more than one row: " + rs.getString("TABLE_NAME"));
        }
        List<String> names = new ArrayList<>();
        try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
          while (rs.next()) names.add(rs.getString("TABLE_NAME"));
        }
        eq(names, PG_TABLES, "tables of pg.public");
        // BEST GUESS: the source's views are views.
        List<String> views = new ArrayList<>();
        try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"VIEW"})) {
          while (rs.next()) views.add(rs.getString("TABLE_NAME"));
        }
        eq(views, List.of("big_nations", "connection_ssl"), "views of pg.public");
      }
    });

    check("DatabaseMetaData.getColumns", () -> {
      try (Connection c = connect("pg");
          ResultSet rs = c.getMetaData().getColumns(null, "public", "nation_stats", null)) {
        List<String> got = new ArrayList<>();
        while (rs.next()) {
          got.add(rs.getString("COLUMN_NAME") + " " + rs.getInt("DATA_TYPE") + " " + rs.getString("TYPE_NAME")
              + " " + rs.getInt("COLUMN_SIZE") + " " + rs.getInt("DECIMAL_DIGITS") + " " + rs.getString("IS_NULLABLE")
              + " " + rs.getInt("ORDINAL_POSITION"));
        }
        eq(got, List.of(
            "n_nationkey " + Types.BIGINT + " int8 19 0 NO 1",
            "population_millions " + Types.NUMERIC + " numeric 8 1 YES 2",
            "capital " + Types.VARCHAR + " text 2147483647 0 YES 3"), "columns");
      }
    });

    check("DatabaseMetaData.getPrimaryKeys", () -> {
      try (Connection c = connect("pg");
          ResultSet rs = c.getMetaData().getPrimaryKeys(null, "public", "nation_stats")) {
        if (!rs.next()) throw new AssertionError("no primary key");
        eq(rs.getString("COLUMN_NAME"), "n_nationkey", "COLUMN_NAME");
        eq(rs.getInt("KEY_SEQ"), 1, "KEY_SEQ");
        if (rs.next()) throw new AssertionError("more than one key column");
      }
    });

    check("PreparedStatement executed 10 times", () -> {
      long[] keys = {6, 7, 8, 12, 99};
      String[] capitals = {"Paris", "Berlin", "New Delhi", "Tokyo", "Nowhere"};
      String[] populations = {"68.0", "84.5", "1428.6", "124.5", "1.0"};
      try (Connection c = connect("pg");
          PreparedStatement ps = c.prepareStatement(
              "SELECT capital, population_millions FROM nation_stats WHERE n_nationkey = ?")) {
        for (int i = 0; i < 10; i++) {
          ps.setLong(1, keys[i % 5]);
          try (ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) throw new AssertionError("no row for " + keys[i % 5] + " at execution " + (i + 1));
            eq(rs.getString(1), capitals[i % 5], "capital, execution " + (i + 1));
            eq(rs.getBigDecimal(2), new BigDecimal(populations[i % 5]), "population, execution " + (i + 1));
            if (rs.next()) throw new AssertionError("more than one row");
          }
        }
      }
    });

    check("setFetchSize(2) with autocommit off", () -> {
      try (Connection c = connect("demo")) {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
          st.setFetchSize(2);
          List<String> names = new ArrayList<>();
          try (ResultSet rs = st.executeQuery("SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey")) {
            long expectKey = 0;
            while (rs.next()) {
              eq(rs.getLong(1), expectKey++, "n_nationkey");
              names.add(rs.getString(2));
            }
          }
          eq(names.size(), 25, "rows");
          eq(names.get(0), "ALGERIA", "first");
          eq(names.get(24), "UNITED STATES", "last");
        }
        c.commit();
      }
    });

    check("arrays, numeric and timestamptz values", () -> {
      try (Connection c = connect("pg");
          PreparedStatement ps = c.prepareStatement(
              "SELECT c_int_arr, c_text_arr, c_numeric, c_timestamptz, c_uuid FROM all_types WHERE id = ?")) {
        ps.setInt(1, 1);
        try (ResultSet rs = ps.executeQuery()) {
          if (!rs.next()) throw new AssertionError("no row");
          Array ints = rs.getArray(1);
          eq(Arrays.asList((Object[]) ints.getArray()), Arrays.asList(1, null, 3), "int[]");
          Array texts = rs.getArray(2);
          eq(Arrays.asList((Object[]) texts.getArray()), Arrays.asList("a b", "", null, "x\"y", "z"), "text[]");
          eq(rs.getBigDecimal(3), new BigDecimal("1234567890123.45"), "numeric");
          eq(rs.getObject(4, OffsetDateTime.class).withOffsetSameInstant(ZoneOffset.UTC),
              OffsetDateTime.of(2024, 6, 1, 10, 0, 0, 123_000_000, ZoneOffset.UTC), "timestamptz");
          eq(rs.getString(5), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "uuid");
        }
      }
    });

    check("executeUpdate with setAutoCommit(false): rollback undoes, commit keeps", () -> {
      try (Connection c = connect("pg")) {
        try (Statement st = c.createStatement()) {
          st.execute("CREATE SCHEMA IF NOT EXISTS jdbc_test");
          st.execute("DROP TABLE IF EXISTS jdbc_test.items");
          st.execute("CREATE TABLE jdbc_test.items (id int PRIMARY KEY, v text)");
        }
        c.setAutoCommit(false);
        try (PreparedStatement insert = c.prepareStatement("INSERT INTO jdbc_test.items VALUES (?, ?)");
            PreparedStatement update = c.prepareStatement("UPDATE jdbc_test.items SET v = ? WHERE id = ?");
            Statement st = c.createStatement()) {
          for (int i = 1; i <= 3; i++) {
            insert.setInt(1, i);
            insert.setString(2, "v" + i);
            eq(insert.executeUpdate(), 1, "insert " + i);
          }
          update.setString(1, "changed");
          update.setInt(2, 2);
          eq(update.executeUpdate(), 1, "prepared update");
          eq(st.executeUpdate("DELETE FROM jdbc_test.items WHERE id = 3"), 1, "delete");
          try (ResultSet rs = st.executeQuery("SELECT count(*) FROM jdbc_test.items WHERE v = 'changed'")) {
            rs.next();
            eq(rs.getLong(1), 1L, "the block sees its update");
          }
          c.rollback();
          try (ResultSet rs = st.executeQuery("SELECT count(*) FROM jdbc_test.items")) {
            rs.next();
            eq(rs.getLong(1), 0L, "rows after rollback");
          }
          insert.setInt(1, 7);
          insert.setString(2, "kept");
          eq(insert.executeUpdate(), 1, "insert after rollback");
          c.commit();
        }
        try (Connection other = connect("pg"); Statement st = other.createStatement();
            ResultSet rs = st.executeQuery("SELECT id, v FROM jdbc_test.items")) {
          if (!rs.next()) throw new AssertionError("the committed row is missing");
          eq(rs.getInt(1), 7, "id");
          eq(rs.getString(2), "kept", "v");
          if (rs.next()) throw new AssertionError("more than the committed row");
        }
        c.setAutoCommit(true);
        try (Statement st = c.createStatement()) {
          st.execute("DROP TABLE jdbc_test.items");
          st.execute("DROP SCHEMA jdbc_test");
        }
      }
    });

    System.out.println("jdbc: " + passed + " passed, " + failed + " failed");
    System.exit(failed == 0 ? 0 : 1);
  }
}
