"""`coa eval` reads any question file by extension (AutoCoA's verl parquet as is) and takes the model's dtype."""

import json

from coa.cli import main


def test_eval_on_autocoa_test_parquet_in_bfloat16(real_autocoa, small_model_dir, tiny_corpus, tmp_path):
    out = tmp_path / "eval"
    main(["eval", "--model", str(small_model_dir), "--qa", str(real_autocoa / "test.parquet"), "--limit", "3",
          "--corpus", str(tiny_corpus), "--prompt", "short", "--max_new_tokens", "8", "--modes", "search",
          "--dtype", "bfloat16", "--out", str(out)])
    rows = [json.loads(line) for line in open(out / "predictions.jsonl")]
    assert len(rows) == 3 and all(r["meta"]["source_file"].endswith("_dev.json") for r in rows)
    assert json.load(open(out / "metrics.json"))["metrics"]["search/all"]["n"] == 3
