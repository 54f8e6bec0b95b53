"""Include bombs and DTDs in job files: `rexfit validate` stops at once with exit 2 and a
`file:line` error (the include or declaration that went too far), never hangs or reads
anything a job file did not name as an include."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from rexfit.cli import main
from rexfit.job import load as load_module

JOB = Path(__file__).resolve().parents[2] / "jobs" / "ar-lj" / "job.xml"
XI = 'xmlns:xi="http://www.w3.org/2001/XInclude"'


def validate(capsys, path) -> tuple[int, list[str], float]:
    start = time.perf_counter()
    code = main(["validate", str(path)])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()], seconds


def assert_rejected(capsys, path, file, line, *fragments, limit=10.0):
    code, lines, seconds = validate(capsys, path)
    assert code == 2, lines
    assert not any("Traceback" in ln for ln in lines), lines
    assert seconds < limit, f"took {seconds:.1f} s"
    prefix = f"{file}:{line}: "
    hits = [ln for ln in lines if ln.startswith(prefix)]
    assert hits, f"no error at {prefix!r} in {lines}"
    assert any(all(f in ln for f in fragments) for ln in hits), (fragments, hits)
    return lines


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def job_with(tmp_path, marker: str, replacement: str, name="job.xml") -> tuple[Path, str]:
    """The Ar LJ example with ``marker`` replaced; (path, text)."""
    text = JOB.read_text()
    assert marker in text
    text = text.replace(marker, replacement, 1)
    path = tmp_path / name
    path.write_text(text)
    return path, text


# ----------------------------------------------------------------------------- include bombs


def write_chain(tmp_path, depth: int, copies: int) -> Path:
    """f0 (a group of structures) includes f1 ``copies`` times, f1 includes f2, ...; the
    last file is one dimer structure under a unique id per level."""
    for k in range(depth):
        if k == depth - 1:
            body = '<group id="g"/>'
        else:
            body = "\n".join(f'<xi:include href="f{k + 1}.xml"/>' for _ in range(copies))
        (tmp_path / f"f{k}.xml").write_text(f'<group {XI} id="g{k}">\n{body}\n</group>\n')
    return tmp_path / "f0.xml"


def first_over(depth: int, copies: int, limit: int) -> tuple[str, int]:
    """(file, line) of the include that makes the expansion count pass ``limit``, with
    includes expanded depth first in document order (the job's own include is number 1)."""
    count = 1

    def visit(k):
        nonlocal count
        if k == depth - 1:
            return None
        for c in range(copies):
            count += 1
            if count > limit:
                return f"f{k}.xml", 2 + c
            found = visit(k + 1)
            if found:
                return found
        return None

    return visit(0)


@pytest.mark.parametrize("depth,copies", [(25, 2), (14, 3), (40, 2), (3, 60)])
def test_include_chain_bomb(tmp_path, capsys, depth, copies):
    write_chain(tmp_path, depth, copies)
    path, _ = job_with(tmp_path, "<structures>", f'<structures>\n<xi:include {XI} href="f0.xml"/>')
    name, line = first_over(depth, copies, load_module.MAX_INCLUDES)
    lines = assert_rejected(capsys, path, tmp_path / name, line, "<xi:include> expansions",
                            "include each file once")
    assert len(lines) == 2  # the one error and the summary line


def test_wide_include_fan(tmp_path, capsys):
    (tmp_path / "leaf.xml").write_text('<group id="leaf"/>\n')
    incs = "\n".join('<xi:include href="leaf.xml"/>' for _ in range(load_module.MAX_INCLUDES + 5))
    path, text = job_with(tmp_path, "<structures>", f"<structures {XI}>\n{incs}")
    first_extra = line_of(text, "<structures") + load_module.MAX_INCLUDES + 1
    assert_rejected(capsys, path, path, first_extra, "expansions")


def test_repeated_big_include_hits_element_bound(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(load_module, "MAX_ELEMENTS", 5000)
    leaf = "<group id='big'>\n" + "\n".join("<group id='x'/>" for _ in range(1000)) + "\n</group>\n"
    (tmp_path / "big.xml").write_text(leaf)
    incs = "\n".join('<xi:include href="big.xml"/>' for _ in range(10))
    path, text = job_with(tmp_path, "<structures>", f"<structures {XI}>\n{incs}")
    line = line_of(text, "<structures") + 5  # the 5th include passes 5000 elements
    assert_rejected(capsys, path, path, line, "more than 5000 XML elements")


def test_text_include_of_endless_file(tmp_path, capsys, monkeypatch):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    monkeypatch.setattr(load_module, "MAX_EXPANDED_BYTES", 2**20)
    path, text = job_with(tmp_path, "<name>Ar Lennard-Jones</name>",
                          f'<name {XI}>\n<xi:include href="/dev/zero" parse="text"/></name>')
    assert_rejected(capsys, path, path, line_of(text, "/dev/zero"), "MiB")


def test_moderate_repeated_includes_still_valid(tmp_path, capsys):
    write_chain(tmp_path, 6, 2)  # 62 expansions: fine
    path, _ = job_with(tmp_path, "<structures>", f'<structures>\n<xi:include {XI} href="f0.xml"/>')
    code, lines, _ = validate(capsys, path)
    assert code == 0, lines


# ----------------------------------------------------------------------------- DTDs, entities

DOCTYPES = {
    "external-file": '<!DOCTYPE job [\n  <!ENTITY secret SYSTEM "file://{secret}">\n]>',
    "external-url": '<!DOCTYPE job [ <!ENTITY web SYSTEM "http://127.0.0.1:9/x"> ]>',
    "parameter": '<!DOCTYPE job [ <!ENTITY % p SYSTEM "file://{secret}"> %p; ]>',
    "laughs": ('<!DOCTYPE job [\n <!ENTITY a "aaaaaaaaaa">\n <!ENTITY b "&a;&a;&a;&a;&a;&a;">'
               '\n <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">\n]>'),
    "external-dtd": '<!DOCTYPE job SYSTEM "file://{secret}">',
    "plain": "<!DOCTYPE job>",
}
USES = {"external-file": "&secret;", "external-url": "&web;", "laughs": "&c;"}


@pytest.mark.parametrize("kind", sorted(DOCTYPES))
def test_doctype_rejected(tmp_path, capsys, kind):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    text = JOB.read_text()
    head, rest = text.split("\n", 1)
    # after the XML declaration and the leading comment, so the line is not 1
    doctype = DOCTYPES[kind].replace("{secret}", str(secret))
    rest = rest.replace("<job>", doctype + "\n<job>", 1)
    if kind in USES:
        rest = rest.replace("Ar Lennard-Jones", USES[kind], 1)
    text = head + "\n" + rest
    path = tmp_path / "job.xml"
    path.write_text(text)
    lines = assert_rejected(capsys, path, path, line_of(text, "<!DOCTYPE"), "not allowed")
    assert not any("TOP-SECRET" in ln for ln in lines)


def test_doctype_in_included_file_names_that_file(tmp_path, capsys):
    inc = tmp_path / "parts" / "structs.xml"
    inc.parent.mkdir()
    inc.write_text('<?xml version="1.0"?>\n\n<!DOCTYPE group [ <!ENTITY x "y"> ]>\n'
                   '<group id="g"/>\n')
    path, _ = job_with(tmp_path, "<structures>",
                       f'<structures>\n<xi:include {XI} href="parts/structs.xml"/>')
    assert_rejected(capsys, path, os.path.normpath(str(inc)), 3, "<!DOCTYPE", "not allowed")


def test_doctype_text_in_comment_is_fine(tmp_path, capsys):
    path, _ = job_with(tmp_path, "<job>", "<!-- no <!DOCTYPE here,\n <!ENTITY x 'y'> -->\n<job>")
    code, lines, _ = validate(capsys, path)
    assert code == 0, lines


def test_include_of_url_is_not_fetched(tmp_path, capsys):
    path, text = job_with(tmp_path, "<structures>",
                          f'<structures>\n<xi:include {XI} href="http://127.0.0.1:9/s.xml"/>')
    assert_rejected(capsys, path, path, line_of(text, "http://"), "not found")
