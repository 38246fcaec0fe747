"""Re-exports `datagen.synthetic` logs the way a team's systems might, with a logs file for them.

    python scripts/export_example.py /tmp/shop

Reads `/tmp/shop/{views,clicks,purchases,items}.csv` (the generator's output) and
writes, in the same directory: `views/part-0.parquet` (Parquet, millisecond
times, the team's column names), `clicks.tfrecord` (TFRecord of tf.Example),
`orders.csv.gz` (';'-delimited, no header, latin-1, ISO-8601 times, gzip),
`products.csv` (a '>'-path category, two 0/1 flag columns, a description), and
`logs.yaml` describing them: the README's "Your own logs" worked example.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

LOGS_YAML = """\
name: shop
schema: shop.pbtxt
logs:
  - name: views
    file: views/*.parquet
    format: parquet
    columns: {user: customer, item: sku, timestamp: ts}
    timestamp_unit: milliseconds
    event_type: view
    retrieval: 1.0
    evaluate: false
  - name: clicks
    file: clicks.tfrecord
    format: tfrecord
    columns: {user: customer, item: sku, timestamp: ts}
    event_type: click
    retrieval: 2.0
    evaluate: false
  - name: orders
    file: orders.csv.gz
    csv: {delimiter: ";", header: false, columns: [customer, sku, ts, stars], encoding: latin-1}
    columns: {user: customer, item: sku, timestamp: ts, rating: stars}
    timestamp_unit: iso8601
    event_type: order
    retrieval: 4.0
    rating: true
    evaluate: true
  - name: returns
    file: returns.csv
    optional: true
    columns: {user: customer, item: sku, timestamp: ts}
    event_type: return
    retrieval: 0.0
    evaluate: false
catalog:
  file: products.csv
  columns: {item: sku, title: name}
  categorical:
    - {column: category, separator: ">"}
    - {flags: [organic, vegan]}
  text: [description]
# Order ratings follow the same taste as the views (the synthetic generator's design):
# the retrieval dot product helps the rating tower here (see configs/synthetic.yaml).
model:
  dcn: {dot_product: true}
"""


def _rows(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def export(directory: str) -> str:
    """Writes the exports and `logs.yaml` into `directory`; returns the logs file's path."""
    views = _rows(os.path.join(directory, "views.csv"))
    os.makedirs(os.path.join(directory, "views"), exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "customer": [f"c{r['user_id']}" for r in views],
                "sku": [f"sku-{r['item_id']}" for r in views],
                "ts": [int(r["timestamp"]) * 1000 for r in views],
            }
        ),
        os.path.join(directory, "views", "part-0.parquet"),
    )
    import tensorflow as tf

    with tf.io.TFRecordWriter(os.path.join(directory, "clicks.tfrecord")) as writer:
        for r in _rows(os.path.join(directory, "clicks.csv")):
            feature = {
                "customer": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[f"c{r['user_id']}".encode()])
                ),
                "sku": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[f"sku-{r['item_id']}".encode()])
                ),
                "ts": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(r["timestamp"])])),
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    lines = []
    for r in _rows(os.path.join(directory, "purchases.csv")):
        moment = datetime.datetime.fromtimestamp(int(r["timestamp"]), datetime.timezone.utc)
        lines.append(f"c{r['user_id']};sku-{r['item_id']};{moment.isoformat()};{r['rating']}\n")
    with open(os.path.join(directory, "orders.csv.gz"), "wb") as f:
        f.write(gzip.compress("".join(lines).encode("latin-1")))
    with open(os.path.join(directory, "products.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "name", "category", "organic", "vegan", "description"])
        for r in _rows(os.path.join(directory, "items.csv")):
            item = int(r["item_id"])
            writer.writerow(
                [
                    f"sku-{item}",
                    r["title"].split(" (")[0],
                    ">".join(["shop", *r["genres"].split("|")]),
                    int(item % 3 == 0),
                    int(item % 5 == 0),
                    f"{r['genres'].replace('|', ' and ')} product number {item}",
                ]
            )
    path = os.path.join(directory, "logs.yaml")
    with open(path, "w") as f:
        f.write(LOGS_YAML)
    return path


if __name__ == "__main__":
    print(f"Wrote {export(sys.argv[1])}")
