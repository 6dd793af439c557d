"""`python -m depo.bench.speed`: the estimator's predict and update costs per training variant."""

from __future__ import annotations

import json

import pytest

from depo.bench.speed import VARIANTS, load_texts, main, measure
from depo.errors import DepoError
from depo.paths import shared_data_dir


def test_every_variant_is_timed_on_any_encoder(tiny_bert_dir):
    texts = ["gcd 14, 7", "what is 3 + 4?", "count the vowels in banana", "reverse 'abc'"]
    results = measure(texts, repeats=1, max_length=16, encoder_path=str(tiny_bert_dir))
    assert set(results) == set(VARIANTS)
    for name, row in results.items():
        assert row["predict_s"] > 0 and row["update_s"] > 0, name
        assert ("predict_cold_s" in row) == (name in ("frozen+cache", "top2")), name
    # frozen: head only; top2 of this 2-layer encoder: every layer trains but the embeddings do not
    assert results["frozen+cache"]["trainable_params"] < results["top2"]["trainable_params"]
    assert results["top2"]["trainable_params"] < results["full"]["trainable_params"]


def test_the_command_prints_a_row_per_variant_and_writes_the_same_figures(tiny_bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("what is 3 + 4?\n\nreverse 'abc'\ngcd 14, 7\n")  # blank lines are not prompts
    out = tmp_path / "speed.json"
    argv = ["--texts", str(texts), "--n", "3", "--repeats", "1", "--threads", "1", "--max-length", "16",
            "--encoder-path", str(tiny_bert_dir), "--variants", "frozen+cache,full", "--json", str(out)]
    assert main(argv) == 0
    saved = json.loads(out.read_text())
    assert (saved["n"], saved["texts"], list(saved["results"])) == (3, str(texts), ["frozen+cache", "full"])
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    for name, row in saved["results"].items():
        assert rows[name][1] == f"{row['predict_s']:.2f}/{row['predict_cpu_s']:.2f}"
        assert rows[name][-1] == f"{int(row['trainable_params']):,}"
    assert rows["full"][2] == "-"  # no cache, so no cold predict


def test_a_text_source_that_cannot_give_n_prompts_is_one_line(tmp_path):
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(DepoError, match="2 lines, need 3"):
        load_texts(str(tmp_path / "two.txt"), 3)
    with pytest.raises(DepoError, match="neither 'math', 'gym' nor a file"):
        load_texts(str(tmp_path / "none.txt"), 3)
    assert len(load_texts("gym", 5)) == 5
    if shared_data_dir() is not None:
        with pytest.raises(DepoError, match="problems, need 1000000"):
            load_texts("math", 10**6)
