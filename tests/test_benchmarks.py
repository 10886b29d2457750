"""Benchmarks: the arith generator is seeded and exact; bundled data loads with gold answers."""

import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from grpo_bench import benchmark as benchmark_module
from grpo_bench.benchmark import DATA_DIR, reward_columns
from grpo_bench.declared import load_declarations
from grpo_bench.errors import UserError
from grpo_bench.plugins.benchmarks.arith import Arith
from grpo_bench.plugins.benchmarks.code_data import MBPP
from grpo_bench.plugins.benchmarks.declared import BUNDLED
from grpo_bench.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent


def test_arith_answers_are_exact_and_seeded():
    a, b = Arith("arith", (1, 2, 3)), Arith("arith", (1, 2, 3))
    train = a.problems("train")
    assert len(train) == 5000 and [p.prompt for p in train[:50]] == [p.prompt for p in b.problems("train")[:50]]
    for p in train[:300] + a.problems("test")[:300]:
        expr = re.match(r"What is (.+)\? Put", p.prompt).group(1)
        assert re.fullmatch(r"[\d +\-*()]+", expr)
        assert int(p.answer) == eval(expr)  # an independent evaluation of the expression
    assert {p.columns["level"] for p in train} == {1, 2, 3}


def test_arith_test_split_is_disjoint_from_train_beyond_level_one():
    bench = Arith("arith-hard", (4, 5))
    train = {p.prompt for p in bench.problems("train")}
    assert not any(p.prompt in train for p in bench.problems("test"))


def test_arith_version_2_test_is_unique_and_never_in_train():
    """Version 2: every test problem once, none in train, level 1 in train only; version 1 unchanged."""
    reg = default_registry()
    for name, levels in (("arith", {2, 3}), ("arith-hard", {4, 5})):
        v1, v2 = reg.get("benchmarks", name), reg.get("benchmarks", name).at_version(2)
        assert (v1.version, v2.version, v2.describe()["version"]) == (1, 2, 2)
        test, train = v2.problems("test"), v2.problems("train")
        prompts = [p.prompt for p in test]
        assert len(prompts) == len(set(prompts)) == 500 and len(train) == 5000
        assert not set(prompts) & {p.prompt for p in train}
        assert {p.columns["level"] for p in test} == levels
        assert [p.prompt for p in v1.problems("test")[:3]] == [p.prompt for p in Arith(name, v1.levels).problems("test")[:3]]
    assert {p.columns["level"] for p in reg.get("benchmarks", "arith").at_version(2).problems("train")} == {1, 2, 3}


def test_bundled_math_benchmarks_load():
    reg = default_registry()
    gsm = reg.get("benchmarks", "gsm8k")
    assert len(gsm.problems("test")) == 1319 and len(gsm.problems("train")) == 7473
    assert gsm.problems("test")[0].answer == "18"
    assert all("," not in p.answer for p in gsm.problems("test"))
    m500 = reg.get("benchmarks", "math500").problems("test")
    assert len(m500) == 500 and all(p.answer for p in m500)
    math_test = reg.get("benchmarks", "math").problems("test")
    assert len(math_test) == 5000 and sum(bool(p.answer) for p in math_test) > 4950


def test_gold_answers_grade_themselves():
    """Each benchmark's gold answer, boxed, scores 1.0 under its eval reward (first 40 problems)."""
    reg = default_registry()
    for name in ("gsm8k", "math500", "arith"):
        bench = reg.get("benchmarks", name)
        fn = reg.get("rewards", bench.eval_reward)
        probs = bench.problems("test", 40)
        scores = fn([p.prompt for p in probs], [f"\\boxed{{{p.answer}}}" for p in probs], answer=[p.answer for p in probs])
        assert scores.count(1.0) >= 38, (name, scores)


def test_normalise_whitespace_and_numbers():
    from grpo_bench.contamination import normalise

    assert normalise("  What is\t1,000 +  2.50?\n") == "What is 1000 + 2.5?"
    assert normalise("007 apples, 3.0 pears, 1,2,3") == "7 apples, 3 pears, 1,2,3"
    assert normalise("3 + 4") == normalise("3  +  4") != normalise("3 + 5")


def test_benchmarks_check_pins_held_out_splits_and_documents_known_overlap():
    """Every benchmark version that claims a held-out test split: 0 duplicates in test, 0 test items in any
    other split. The rest as measured (docs/leaderboard.md, "Benchmark versions"): arith v1 repeats test
    problems and shares all of level 1 with train; MATH has one problem twice in train and one test problem
    (precalculus/24307) that is also in train; GSM8K, MBPP, HumanEval and MATH-500 have no such overlap."""
    from grpo_bench.contamination import check_all

    rows = check_all(default_registry())
    held = [r for r in rows if r["held_out"]]
    assert {(r["benchmark"], r["version"]) for r in held} >= {("arith", 2), ("arith-hard", 2)}
    for r in held:
        assert (r["duplicates"] if r["split"] == "test" else r["test_items_here"]) == 0, r
    got = {(r["benchmark"], r["version"], r["split"]): (r["duplicates"], r["test_items_here"]) for r in rows}
    known = {("arith", 1, "test"): (193, None), ("arith", 1, "train"): (2672, 167),
             ("arith-hard", 1, "test"): (15, None), ("arith-hard", 1, "train"): (764, 0),
             ("math", 1, "train"): (1, 1), ("math", 1, "test"): (0, None),
             ("gsm8k", 1, "train"): (0, 0), ("gsm8k", 1, "test"): (0, None),
             ("mbpp", 1, "train"): (0, 0), ("mbpp", 1, "validation"): (0, 0), ("mbpp", 1, "prompt"): (0, 0),
             ("mbpp", 1, "test"): (0, None), ("humaneval", 1, "test"): (0, None), ("math500", 1, "test"): (0, None)}
    assert {k: got[k] for k in known} == known


def test_benchmarks_check_command_prints_the_table(capsys):
    from grpo_bench.cli import main

    assert main(["benchmarks", "check", "arith"]) == 0
    out = capsys.readouterr().out
    assert "| arith | 2 | yes | test | 500 | 500 | 0 | - |" in out and "| arith | 1 | no | train | 5000 |" in out
    assert "| arith v2 | arith v1 | 500 | 251 |" in out  # why a suite may not train on v1 and evaluate on v2
    assert main(["benchmarks", "check", "nope"]) == 2


# --- declared benchmarks (issue 24): the problems did not move, checksums, the docs example -----------------

#: sha256 (first 16 hex) of each benchmark's spec and problems (ids, prompts, answers, columns, in order),
#: computed on main before the bundled benchmarks became declarations (9002c4b); see _problems_digest.
PROBLEMS_BEFORE = {
    "arith/v1/train": (5000, "6f9ee9526fbefbd8"),
    "arith/v1/test": (500, "480c0bddfa0b2202"),
    "arith/v2/train": (5000, "44a7764057e33b99"),
    "arith/v2/test": (500, "e69c67d9833f1c91"),
    "arith-hard/v1/train": (5000, "18d8f00611d231c7"),
    "arith-hard/v1/test": (500, "c5702742e0e2dcb6"),
    "arith-hard/v2/train": (5000, "bdda35a81506331c"),
    "arith-hard/v2/test": (500, "bb7c1a991c35bcd4"),
    "gsm8k/v1/train": (7473, "e3ce468bd789a5dd"),
    "gsm8k/v1/test": (1319, "397fcc13d3f4a496"),
    "humaneval/v1/test": (164, "63decc647164967d"),
    "math/v1/train": (7500, "277390432ac00d7c"),
    "math/v1/test": (5000, "945d91eda5e5362f"),
    "math500/v1/test": (500, "a3f84995128cd7cd"),
    "mbpp/v1/train": (374, "eeb2f7f8bfb811d1"),
    "mbpp/v1/validation": (90, "d901d762988f4412"),
    "mbpp/v1/test": (500, "f03ee5917315e77f"),
    "mbpp/v1/prompt": (10, "d8f6b6a7a4ad32c3"),
}


def _problems_digest(bench, split: str) -> str:
    spec = {k: v for k, v in bench.describe().items() if k != "code_sandbox"} | {
        "description": bench.description, "hub_dataset": bench.hub_dataset, "held_out": bench.held_out,
        "splits": list(bench.splits), "versions": list(bench.versions)}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for p in bench.problems(split):
        digest.update(json.dumps([p.id, p.prompt, p.answer, p.columns], sort_keys=True, default=repr).encode() + b"\n")
    return digest.hexdigest()[:16]


def test_every_bundled_benchmark_yields_the_problems_it_did_before_declarations():
    reg = default_registry()
    seen = {}
    for name in reg.names("benchmarks"):
        for version in reg.get("benchmarks", name).versions:
            bench = reg.get("benchmarks", name).at_version(version)
            for split in bench.splits:
                seen[f"{name}/v{version}/{split}"] = (len(bench.problems(split)), _problems_digest(bench, split))
    assert seen == PROBLEMS_BEFORE


def _sums() -> dict[str, str]:
    return {name: digest for digest, name in (line.split() for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines())}


def test_a_changed_data_file_fails_its_old_checksum_in_one_line(tmp_path):
    text = gzip.decompress((DATA_DIR / "gsm8k" / "test.jsonl.gz").read_bytes())
    assert hashlib.sha256(text).hexdigest() == _sums()["gsm8k/test.jsonl"]
    (tmp_path / "test.jsonl").write_bytes(text.replace(b"Janet", b"Janey", 1))  # one byte
    (tmp_path / "g.toml").write_text(f'name = "g"\n[splits]\ntest = {{ file = "test.jsonl", sha256 = '
                                     f'"{_sums()["gsm8k/test.jsonl"]}" }}\n[fields]\nquestion = "{{question}}"\n'
                                     f'answer = "{{answer}}"\nanswer_extract = "after_####"\n')
    bench = load_declarations([tmp_path / "g.toml"], DATA_DIR)["g"]
    with pytest.raises(UserError) as err:
        bench.problems("test")
    assert len(str(err.value).splitlines()) == 1 and "does not match its checksum" in str(err.value)
    (tmp_path / "test.jsonl").write_bytes(text)  # restored: the same file loads
    assert load_declarations([tmp_path / "g.toml"], DATA_DIR)["g"].problems("test")[0].answer == "18"


def test_a_changed_bundled_file_fails_against_sha256sums(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR / "math500", data / "math500")
    shutil.copy(DATA_DIR / "SHA256SUMS", data / "SHA256SUMS")
    decl = BUNDLED / "math500.toml"
    assert len(load_declarations([decl], data)["math500"].problems("test")) == 500
    rows = gzip.decompress((data / "math500" / "test.jsonl.gz").read_bytes())
    (data / "math500" / "test.jsonl.gz").write_bytes(gzip.compress(rows.replace(b"\\frac", b"\\dfrac", 1)))
    with pytest.raises(UserError, match=r"math500/test.jsonl.gz does not match its checksum"):
        load_declarations([decl], data)["math500"].problems("test")
    mbpp = MBPP()
    mbpp_gz = data / "mbpp" / "mbpp.jsonl.gz"  # MBPP (code) reads through the same check
    mbpp_gz.parent.mkdir()
    mbpp_gz.write_bytes(gzip.compress(gzip.decompress((DATA_DIR / "mbpp" / "mbpp.jsonl.gz").read_bytes()) + b"\n"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(benchmark_module, "DATA_DIR", data)
        with pytest.raises(UserError, match="mbpp.jsonl.gz does not match its checksum"):
            mbpp.problems("test")


def _doc_block(after: str) -> str:
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index("## Adding a dataset"):]
    return re.search(re.escape(after) + r".*?```\w*\n(.*?)```", section, re.S).group(1)


def _fresh_registry():
    from grpo_bench.registry import Registry, load_entry_points

    reg = Registry()
    load_entry_points(reg)
    return reg


def test_docs_dataset_example_runs(tmp_path, monkeypatch):
    """The JSONL and TOML of docs/plugins.md, "Adding a dataset", written to tmp_path and registered with no Python."""
    (tmp_path / "speed.jsonl").write_text(_doc_block("The data,\n`speed.jsonl`"))
    (tmp_path / "speed.toml").write_text(_doc_block("Its declaration, `speed.toml`"))
    monkeypatch.setenv("GRPO_BENCH_DATASETS", str(tmp_path / "speed.toml"))
    reg = _fresh_registry()
    assert reg.errors == []
    bench = reg.get("benchmarks", "speed")
    problems = bench.problems("test")
    assert [(p.id, p.answer, p.columns) for p in problems] == [
        ("speed/s1", "60", {"solution": "\\boxed{60}"}), ("speed/s2", "15", {"solution": "\\boxed{15}"})]
    assert problems[1].prompt == ("A cyclist rides 45 km in 3 hours. What is her average speed in km/h?\n"
                                  "Put your final answer within \\boxed{}.")
    fn = reg.get("rewards", bench.eval_reward)
    assert fn([p.prompt for p in problems], ["so \\boxed{60}", "so \\boxed{16}"], **reward_columns(problems)) == [1.0, 0.0]
    (tmp_path / "speed.jsonl").write_text(_doc_block("The data,\n`speed.jsonl`").replace("15", "16"))
    with pytest.raises(UserError, match="speed.jsonl does not match its checksum"):
        _fresh_registry().get("benchmarks", "speed").problems("test")


def test_csv_and_parquet_declarations_read_the_same_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"q": "1 + 1", "a": "2", "level": 1}, {"q": "2 * 3", "a": "6", "level": 2}]
    (tmp_path / "t.csv").write_text("q,a,level\n1 + 1,2,1\n2 * 3,6,2\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    for kind in ("csv", "parquet"):
        digest = hashlib.sha256((tmp_path / f"t.{kind}").read_bytes()).hexdigest()
        (tmp_path / f"{kind}.toml").write_text(
            f'name = "t{kind}"\n[splits]\ntest = {{ file = "t.{kind}", sha256 = "{digest}" }}\n'
            '[fields]\nquestion = "What is {q}?"\nanswer = "{a}"\n[columns]\nlevel = "{level}"\nq = "{q} = {a}"\n')
        problems = load_declarations([tmp_path / f"{kind}.toml"], DATA_DIR)[f"t{kind}"].problems("test")
        assert [(p.id, p.prompt, p.answer) for p in problems] == [(f"t{kind}/test/0", "What is 1 + 1?", "2"),
                                                                  (f"t{kind}/test/1", "What is 2 * 3?", "6")]
        assert problems[1].columns == {"level": "2" if kind == "csv" else 2, "q": "2 * 3 = 6"}


@pytest.mark.parametrize("body,needle", [
    ('name = "x"\nprompt = "{question}"\n', "unknown key 'prompt'"),
    ('name = "x"\n[splits]\ntest = "t.jsonl"\n[fields]\nquestion = "{q}"\nanswer = "{a}"\n', "splits.test needs sha256"),
    ('name = "x"\n[splits]\ntest = { file = "t.jsonl", sha256 = "abc" }\n[fields]\nquestion = "{q}"\nanswer = "{a}"\n',
     "must be 64 hex digits"),
    ('name = "x"\n[splits]\ntest = "t.jsonl"\n[fields]\nquestion = "{q}"\n', "fields.answer is required"),
    ('name = "x"\nbundled = true\n[splits]\ntest = "t.jsonl"\n[fields]\nquestion = "{q}"\nanswer = "{a}"\n'
     'answer_extract = "boxed"\n', "answer_extract 'boxed' is not one of none, after_####, last_boxed"),
    ('name = "x"\nversion = "2"\n', "version must be int"),
    ('name = "x"\nbundled = true\n[splits]\ntest = "t.jsonl"\n[fields]\nquestion = "{q}"\nanswer = "{a}"\n[columns]\n'
     'level = 3\n', "columns.level must be a template"),
])
def test_a_bad_declaration_is_one_line_and_the_bundled_benchmarks_still_load(tmp_path, monkeypatch, body, needle):
    (tmp_path / "x.toml").write_text(body)
    monkeypatch.setenv("GRPO_BENCH_DATASETS", str(tmp_path))
    reg = _fresh_registry()
    assert len(reg.errors) == 1 and needle in reg.errors[0] and "x.toml" in reg.errors[0], reg.errors
    assert "gsm8k" in reg.names("benchmarks") and "x" not in reg.names("benchmarks")
    with pytest.raises(UserError, match=re.escape(needle)):
        reg.get("benchmarks", "x")


def test_a_row_without_a_declared_field_is_one_line(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"q": "1 + 1", "a": "2"}\n{"q": "2 + 2"}\n')
    digest = hashlib.sha256((tmp_path / "t.jsonl").read_bytes()).hexdigest()
    (tmp_path / "t.toml").write_text(f'name = "t"\n[splits]\ntest = {{ file = "t.jsonl", sha256 = "{digest}" }}\n'
                                     '[fields]\nquestion = "{q}"\nanswer = "{a}"\n')
    with pytest.raises(UserError, match=r"benchmark 't', test row 1: the row has no field 'a' \(fields: "):
        load_declarations([tmp_path / "t.toml"], DATA_DIR)["t"].problems("test")


def test_hub_dataset_offline_is_one_line(tmp_path, monkeypatch):
    from grpo_bench import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    hub.online.cache_clear()
    try:
        bench = load_declarations([BUNDLED / "gsm8k.toml"], DATA_DIR)["gsm8k"]
        bench.use_data("hub")
        with pytest.raises(UserError) as err:
            bench.problems("test")
    finally:
        hub.online.cache_clear()
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and "openai/gsm8k" in msg and "HF_HUB_OFFLINE is set" in msg, msg


def test_hub_declaration_reads_the_mapped_split_through_datasets(tmp_path, monkeypatch):
    """A hub-only declaration (no files): ``datasets.load_dataset(id, config, split=theirs)``, rows as files give."""
    import datasets

    from grpo_bench import hub

    calls = []

    def fake_load(path, name=None, split=None):
        calls.append((path, name, split))
        return [{"problem": "1 + 1", "solution": "so \\boxed{2}"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(hub, "check_dataset", lambda bench, repo: None)  # as if the hub were reachable
    (tmp_path / "h.toml").write_text('name = "h"\n[hub]\nid = "someone/sums"\nconfig = "easy"\n'
                                     'splits = { test = "validation" }\n[fields]\nquestion = "{problem}"\n'
                                     'answer = "{solution}"\nanswer_extract = "last_boxed"\n')
    bench = load_declarations([tmp_path / "h.toml"], DATA_DIR)["h"]
    assert bench.splits == ("test",) and bench.hub_dataset == "someone/sums"
    (p,) = bench.problems("test")
    assert (p.id, p.prompt, p.answer) == ("h/test/0", "1 + 1", "2") and calls == [("someone/sums", "easy", "validation")]
