"""Loads sql-tests/fixtures/mongodb.json into a MongoDB database, drops the
database, or resets one collection to given documents.

Usage: mongo_fixture.py URL DATABASE            load the fixture
       mongo_fixture.py URL DATABASE --drop     drop the database
       mongo_fixture.py URL DATABASE --reset COLLECTION 'EXTENDED-JSON-LIST'
       mongo_fixture.py URL DATABASE --dump COLLECTION   print its documents,
                                                         by _id, one per line
       mongo_fixture.py URL DATABASE --count COLLECTION  print how many it holds
       mongo_fixture.py URL DATABASE --sum COLLECTION FIELD  print the sum of a field
       mongo_fixture.py URL DATABASE --drop-collection COLLECTION
       mongo_fixture.py URL DATABASE --set COLLECTION ID FIELD VALUE
                          set FIELD of the document whose `id` is ID to
                          VALUE, in the type the field has now
"""
import pathlib
import sys

from bson import json_util
from bson.decimal128 import Decimal128
from pymongo import MongoClient

url, database = sys.argv[1], sys.argv[2]
client = MongoClient(url)
if "--dump" in sys.argv:
    collection = sys.argv[sys.argv.index("--dump") + 1]
    for document in client[database][collection].find().sort("_id", 1):
        print(json_util.dumps(document, sort_keys=True))
    sys.exit(0)
if "--count" in sys.argv:
    collection = sys.argv[sys.argv.index("--count") + 1]
    print(client[database][collection].count_documents({}))
    sys.exit(0)
if "--sum" in sys.argv:
    at = sys.argv.index("--sum")
    collection, field = sys.argv[at + 1], sys.argv[at + 2]
    result = list(client[database][collection].aggregate(
        [{"$group": {"_id": None, "total": {"$sum": "$" + field}}}]))
    print(result[0]["total"] if result else 0)
    sys.exit(0)
if "--set" in sys.argv:
    at = sys.argv.index("--set")
    collection, key, field, value = sys.argv[at + 1 : at + 5]
    documents = client[database][collection]
    found = documents.find_one({"id": int(key)})
    if found is None:
        sys.exit(f"no document with id {key} in {collection}")
    current = found.get(field)
    if isinstance(current, Decimal128):
        typed = Decimal128(value)
    elif isinstance(current, float):
        typed = float(value)
    elif isinstance(current, int):
        typed = int(value)
    else:
        typed = value
    documents.update_one({"_id": found["_id"]}, {"$set": {field: typed}})
    sys.exit(0)
if "--drop-collection" in sys.argv:
    client[database].drop_collection(sys.argv[sys.argv.index("--drop-collection") + 1])
    sys.exit(0)
if "--reset" in sys.argv:
    at = sys.argv.index("--reset")
    collection, documents = sys.argv[at + 1], json_util.loads(sys.argv[at + 2])
    client[database].drop_collection(collection)
    client[database].create_collection(collection)
    if documents:
        client[database][collection].insert_many(documents)
    sys.exit(0)
client.drop_database(database)
if "--drop" not in sys.argv:
    fixture = pathlib.Path(__file__).resolve().parents[2] / "sql-tests/fixtures/mongodb.json"
    for name, documents in json_util.loads(fixture.read_text()).items():
        client[database][name].insert_many(documents)
