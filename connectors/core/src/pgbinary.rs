//! PostgreSQL's binary send formats that Koios's front end and
//! PostgreSQL-compatible connectors share: `numeric` (read and written as
//! decimal text) and `uuid` text. One implementation, so a value the front
//! end writes and one a connector writes straight into a row are the same
//! bytes.

/// Writes a decimal string such as `-123.4500` in numeric_send format.
pub fn write_numeric(out: &mut bytes::BytesMut, decimal: &str) {
    use bytes::BufMut;
    let (negative, digits) = match decimal.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, decimal),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let dscale = frac_part.len() as u16;
    let int_part = int_part.trim_start_matches('0');
    // Base-10000 groups aligned on the decimal point.
    let int_digits = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_digits = format!("{frac_part}{}", "0".repeat((4 - frac_part.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16))
            .collect()
    };
    let int_groups = group(&int_digits);
    let mut weight = int_groups.len() as i16 - 1;
    let mut groups: Vec<i16> = int_groups.into_iter().chain(group(&frac_digits)).collect();
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
}

/// Reads numeric_send bytes as a decimal string (`NaN`, `Infinity` included).
pub fn read_numeric(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() < 8 {
        return Err("malformed binary numeric value".into());
    }
    let sign = u16::from_be_bytes([bytes[4], bytes[5]]);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let (negative, groups, weight, dscale) = numeric_parts(bytes)?;
    let mut int = String::new();
    for position in 0..=weight.max(-1) {
        let g = groups.get(position as usize).unwrap_or(0);
        if int.is_empty() {
            if g != 0 {
                int = g.to_string();
            }
        } else {
            int.push_str(&format!("{g:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut position = weight + 1;
    while frac.len() < dscale as usize {
        let index = position;
        let g = if index >= 0 {
            groups.get(index as usize).unwrap_or(0)
        } else {
            0
        };
        frac.push_str(&format!("{g:04}"));
        position += 1;
    }
    frac.truncate(dscale as usize);
    let sign = if negative { "-" } else { "" };
    Ok(if dscale > 0 {
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}{int}")
    })
}

/// The sign, digit groups, weight and display scale of numeric_send
/// bytes; an error for NaN and infinities, which no Arrow decimal holds.
pub fn numeric_parts(b: &[u8]) -> Result<(bool, NumericGroups<'_>, i32, u16), String> {
    if b.len() < 8 {
        return Err("truncated numeric value".into());
    }
    let ndigits = i16::from_be_bytes([b[0], b[1]]) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]);
    if b.len() != 8 + 2 * ndigits {
        return Err("malformed numeric value".into());
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric NaN has no Arrow decimal representation".into()),
        _ => return Err("numeric infinity has no Arrow decimal representation".into()),
    }
    let groups = NumericGroups(&b[8..]);
    Ok((sign == 0x4000, groups, weight, dscale))
}

/// The base-10000 digit groups of a binary numeric, read in place (a
/// value's decoding allocates nothing).
#[derive(Clone, Copy)]
pub struct NumericGroups<'a>(&'a [u8]);

impl NumericGroups<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    pub fn get(&self, index: usize) -> Option<i16> {
        let pair = self.0.get(2 * index..2 * index + 2)?;
        Some(i16::from_be_bytes([pair[0], pair[1]]))
    }

    pub fn iter(&self) -> impl Iterator<Item = i16> + '_ {
        self.0
            .chunks_exact(2)
            .map(|pair| i16::from_be_bytes([pair[0], pair[1]]))
    }
}

/// A uuid as PostgreSQL prints it: lower-case, hyphenated.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_round_trips() {
        for s in [
            "0",
            "1",
            "-1",
            "123.45",
            "0.0001",
            "10000",
            "-99999999.123456789",
            "0.00",
            "1000000.5",
            "0.5",
        ] {
            let mut out = bytes::BytesMut::new();
            write_numeric(&mut out, s);
            assert_eq!(read_numeric(&out).expect("decodes"), s, "{s}");
        }
        let mut out = bytes::BytesMut::new();
        write_numeric(&mut out, "123.45");
        assert_eq!(
            out.to_vec(),
            vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 123, 0x11, 0x94]
        );
    }
}
