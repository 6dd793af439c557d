"""Reading prompt datasets: parquet / JSONL / JSON tables, dotted verl columns, stable splits."""
