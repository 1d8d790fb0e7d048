"""Run logs never lose a valid record: bad lines and repeated ids are set aside, not cut off."""

from __future__ import annotations

import json

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
