"""Run logs never lose a valid record: bad lines and repeated ids are set aside, not cut off."""

from __future__ import annotations

import errno
import json

import pytest

from nclb.runs.runlog import read_records


def write_records(path, n: int) -> list[bytes]:
    lines = [
        (json.dumps({"id": f"ex{i}", "correct": i % 2 == 0}) + "\n").encode() for i in range(n)
    ]
    path.write_bytes(b"".join(lines))
    return lines


def side_files(folder):
    return sorted(folder.glob("records.set-aside-*.jsonl"))


def test_a_torn_line_in_the_middle_keeps_every_valid_record(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    lines = write_records(path, 300)
    lines[19] = b'{"id": "ex19", "corr\n'  # line 20 garbled
    path.write_bytes(b"".join(lines))
    records = read_records(path)
    assert [r["id"] for r in records] == [f"ex{i}" for i in range(300) if i != 19]
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "kept 299 records" in warning[0] and "1 unreadable" in warning[0]
    # the file now holds exactly the valid records; the bad line is kept beside it
    assert path.read_bytes() == b"".join(lines[:19] + lines[20:])
    (side,) = side_files(tmp_path)
    assert side.read_bytes() == lines[19]
    assert read_records(path) == records and capsys.readouterr().err == ""  # nothing more to do


def test_a_repeated_id_is_dropped_with_a_warning(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    lines = write_records(path, 300)
    path.write_bytes(b"".join(lines + [lines[5]]))
    records = read_records(path)
    assert len(records) == 300 and len({r["id"] for r in records}) == 300
    err = capsys.readouterr().err
    assert "1 record(s) repeating an id" in err and "kept 300 records" in err
    assert side_files(tmp_path)[0].read_bytes() == lines[5]
    assert path.read_bytes().count(b"\n") == 300


def test_a_torn_last_line_is_set_aside_and_the_file_keeps_the_rest(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    lines = write_records(path, 5)
    path.write_bytes(b"".join(lines) + b'{"id": "ex5", "tr')
    assert [r["id"] for r in read_records(path)] == [f"ex{i}" for i in range(5)]
    assert path.read_bytes() == b"".join(lines)
    assert side_files(tmp_path)[0].read_bytes() == b'{"id": "ex5", "tr\n'
    assert "kept 5 records" in capsys.readouterr().err


def test_records_without_an_id_are_set_aside_but_key_none_keeps_repeats(tmp_path):
    path = tmp_path / "traces.jsonl"
    rows = [{"id": "a", "sample": 0}, {"id": "a", "sample": 1}, ["not", "a", "record"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_records(path, key=None) == rows[:2]
    assert read_records(path) == rows[:1]


def test_reading_a_locked_run_folder_announces_the_resume_once(tmp_path, capsys):
    from nclb.runs.lock import RunLock

    path = tmp_path / "records.jsonl"
    write_records(path, 3)
    read_records(path)
    assert capsys.readouterr().err == ""  # not resuming: the folder is not locked here
    lock = RunLock(tmp_path)
    assert lock.records() == lock.records() == read_records(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"resuming 3 logged examples in {tmp_path}")
    lock.release()
    read_records(path)
    assert capsys.readouterr().err == ""
    assert RunLock(tmp_path / "empty").records() == []
    assert capsys.readouterr().err == ""  # nothing to resume, nothing said


def run_record(i: int, **fields) -> dict:
    """A complete `nclb run` record of example toy-<i>, with `fields` replaced."""
    record = {
        "id": f"toy-{i}",
        "prompt": "",
        "output": "abba",
        "answer_text": None,
        "prediction": "abba",
        "gold": None,
        "correct": True,
        "nfe": 4,
        "gen_tokens": 4,
        "seconds": 0.01,
        "exit_step": None,
    }
    return {**record, **fields}


def write_run_records(path, records) -> list[bytes]:
    lines = [(json.dumps(r) + "\n").encode() for r in records]
    path.write_bytes(b"".join(lines))
    return lines


KNOWN = {f"toy-{i}" for i in range(10)}


def read_run_records(path):
    from nclb.runs.runlog import RUN_RECORD

    return read_records(path, schema=RUN_RECORD, known=KNOWN)


def test_a_stray_line_is_set_aside_as_an_incomplete_record(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    lines = write_run_records(path, [run_record(i) for i in range(3)])
    path.write_bytes(b"".join(lines) + b'{"id": "bogus"}\n')
    assert read_run_records(path) == [run_record(i) for i in range(3)]
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert "1 incomplete record(s) (line 4: id 'bogus' is not an example of this run)" in warning
    assert "kept 3 records" in warning
    assert path.read_bytes() == b"".join(lines)
    assert side_files(tmp_path)[0].read_bytes() == b'{"id": "bogus"}\n'
    assert read_run_records(path) == [run_record(i) for i in range(3)]
    assert capsys.readouterr().err == ""


def test_a_stub_before_the_real_record_loses_to_it(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    stub = b'{"id": "toy-1", "correct": true}\n'
    lines = write_run_records(path, [run_record(i) for i in range(3)])
    path.write_bytes(stub + b"".join(lines))
    assert read_run_records(path) == [run_record(i) for i in range(3)]
    err = capsys.readouterr().err
    assert "1 incomplete record(s) (line 1: missing field(s) 'prompt', 'output'" in err
    assert "repeating" not in err
    assert side_files(tmp_path)[0].read_bytes() == stub
    assert path.read_bytes() == b"".join(lines)


def test_of_two_complete_records_for_one_id_the_first_is_kept(tmp_path):
    path = tmp_path / "records.jsonl"
    write_run_records(path, [run_record(0), run_record(0, correct=False)])
    assert read_run_records(path) == [run_record(0)]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"nfe": "many"}, "'nfe' is a string, not an integer"),
        ({"correct": 1}, "'correct' is an integer, not true/false"),
        ({"gen_tokens": True}, "'gen_tokens' is true/false, not an integer"),
        ({"seconds": None}, "'seconds' is null, not an integer or a number"),
        ({"exit_step": 2.5}, "'exit_step' is a number, not an integer or null"),
        ({"id": 7}, "'id' is an integer, not a string"),
        ({"detail": {"verdict": 3}}, "'detail.verdict' is an integer, not a string"),
        ({"kl": {"estimate": 0.1}}, "missing field(s) 'kl.pair_kl'"),
        (
            {"kl": {"estimate": 0.1, "pair_kl": ["x"]}},
            "'kl.pair_kl' holds a string, not an integer or a number",
        ),
        ({"canvas": {"region": [1, 2], "answer": "0:2"}}, "'canvas.answer' is a string"),
        ({"trajectory": "steps"}, "'trajectory' is a string, not a list"),
    ],
)
def test_a_record_with_a_wrong_type_is_set_aside_naming_the_field(tmp_path, capsys, fields, named):
    path = tmp_path / "records.jsonl"
    write_run_records(path, [run_record(0), run_record(1, **fields), run_record(2)])
    from nclb.runs.runlog import RUN_RECORD

    known = None if fields.get("id") == 7 else KNOWN  # 7 is no known id: check its type
    records = read_records(path, schema=RUN_RECORD, known=known)
    assert [r["id"] for r in records] == ["toy-0", "toy-2"]
    err = capsys.readouterr().err
    assert f"1 incomplete record(s) (line 2: {named}" in err and "kept 2 records" in err
    assert json.loads(side_files(tmp_path)[0].read_bytes()) == run_record(1, **fields)


def test_a_complete_record_of_an_unknown_example_is_set_aside(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    write_run_records(path, [run_record(0), run_record(99)])
    assert read_run_records(path) == [run_record(0)]
    assert "id 'toy-99' is not an example of this run" in capsys.readouterr().err
    assert json.loads(side_files(tmp_path)[0].read_bytes())["id"] == "toy-99"


def test_extra_fields_and_every_optional_field_are_kept(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    full = run_record(
        0,
        gold=18,
        answer_text="18",
        exit_step=3,
        seconds=1,
        note="a field this version does not know",
        detail={"strict_correct": True, "lenient_correct": False, "verdict": "strict"},
        trajectory=[{"step": 0, "positions": [1]}],
        canvas={"region": [5, 5], "answer": [0, 2]},
        kl={"estimate": 0.5, "pair_kl": [0.1, 1], "rb": None, "estimator": "rb"},
    )
    write_run_records(path, [full])
    assert read_run_records(path) == [full]
    assert capsys.readouterr().err == "" and not side_files(tmp_path)


def test_the_writer_refuses_an_incomplete_record(tmp_path):
    from nclb.runs.runlog import RUN_RECORD, RecordWriter

    path = tmp_path / "records.jsonl"
    writer = RecordWriter(path, RUN_RECORD)
    writer.write(run_record(0))
    with pytest.raises(ValueError, match="'nfe' is a string"):
        writer.write(run_record(1, nfe="4"))
    writer.close()
    assert read_run_records(path) == [run_record(0)]


def test_table_reads_skip_lines_that_are_not_run_records(tmp_path):
    from nclb.runs.runlog import RUN_RECORD, read_json_lines

    path = tmp_path / "records.jsonl"
    lines = write_run_records(path, [run_record(0), {"id": "toy-0", "correct": True}])
    assert read_json_lines(path, RUN_RECORD) == [run_record(0)]
    assert len(read_json_lines(path)) == 2
    assert path.read_bytes() == b"".join(lines)  # read only


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_temp_file_beside_the_summary(tmp_path, monkeypatch):
    from pathlib import Path

    from nclb.runs.runlog import write_json_atomic

    summary = tmp_path / "summary.json"
    write_json_atomic(summary, {"n": 1})
    real_write_text = Path.write_text

    def full_disk(self, data, *args, **kwargs):
        real_write_text(self, "")  # the file is created, its bytes do not fit
        no_space()

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(summary, {"n": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert json.loads(summary.read_text()) == {"n": 1}


@pytest.mark.parametrize("failing", [1, 2], ids=["side file", "records file"])
def test_a_full_disk_while_setting_aside_changes_nothing(tmp_path, monkeypatch, failing):
    import os

    from nclb.runs import runlog

    path = tmp_path / "records.jsonl"
    lines = write_records(path, 4)
    torn = b"".join(lines) + b'{"id": "ex4", "tr'
    path.write_bytes(torn)
    calls = []
    real_fsync = os.fsync

    def fsync(fd):  # the side file is synced first, then the rewritten records file
        calls.append(fd)
        if len(calls) == failing:
            no_space()
        real_fsync(fd)

    monkeypatch.setattr(runlog.os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        read_records(path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]  # no empty side file
    assert path.read_bytes() == torn
    assert [r["id"] for r in read_records(path)] == [f"ex{i}" for i in range(4)]
    assert side_files(tmp_path)[0].read_bytes() == b'{"id": "ex4", "tr\n'


def test_a_failed_set_aside_keeps_what_the_side_file_held(tmp_path, monkeypatch):
    from nclb.runs import runlog

    path = tmp_path / "records.jsonl"
    side = tmp_path / "records.set-aside-same-second.jsonl"
    side.write_bytes(b"earlier\n")
    monkeypatch.setattr(runlog, "set_aside_path", lambda p: side)
    monkeypatch.setattr(runlog, "replace_lines", no_space)
    write_records(path, 2)
    path.write_bytes(path.read_bytes() + b"garbled\n")
    with pytest.raises(OSError):
        read_records(path)
    assert side.read_bytes() == b"earlier\n"


def test_releasing_a_lock_removes_its_file_and_the_folders_it_made(tmp_path):
    from nclb.runs.lock import RunLock

    lock = RunLock(tmp_path / "out" / "model" / "run")
    assert (tmp_path / "out" / "model" / "run" / ".lock").is_file()
    lock.release()
    assert list(tmp_path.iterdir()) == []  # nothing was written: nothing stays
    (tmp_path / "out").mkdir()
    lock = RunLock(tmp_path / "out" / "run")
    (tmp_path / "out" / "run" / "records.jsonl").write_text("")
    lock.release()
    assert [p.name for p in (tmp_path / "out" / "run").iterdir()] == ["records.jsonl"]
    lock = RunLock(tmp_path / "out" / "other")
    lock.release()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run"]  # kept: not its own
