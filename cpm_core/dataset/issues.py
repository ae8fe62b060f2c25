"""How every reader reports malformed input: one `FormatIssue` per bad record, one exception type.

Real label files are messy (a truncated line, a hand with 20 points, a hand-edited JSON). A reader should
neither die on the first bad record of ten thousand nor drop it silently, so all readers share one policy:

* a bad *record* (a labels.txt line, a COCO annotation, a CMU JSON file, a TFRecord example) is skipped and
  described by a `FormatIssue` (file, line or record id, message) appended to `Dataset.issues`;
* with `strict=True` the first bad record raises `DatasetFormatError` instead;
* a *fatal* problem, where there is no record to skip (a COCO file that is not JSON, a missing folder), always
  raises `DatasetFormatError`, strict or not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatIssue:
    """One problem in an input file: where it is (file, 1-based line and/or record id) and what is wrong."""

    file: str
    message: str
    line: int | None = None
    record: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.record is not None:
            where += f" ({self.record})"
        return f"{where}: {self.message}"


class DatasetFormatError(ValueError):
    """Raised for fatal format problems, and for the first bad record when a reader runs with strict=True."""

    def __init__(self, issue: FormatIssue | str) -> None:
        if isinstance(issue, str):
            issue = FormatIssue(file="", message=issue)
        self.issue = issue
        super().__init__(str(issue))


class IssueLog:
    """Collects issues for one read; raises at the first one when strict."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.issues: list[FormatIssue] = []

    def report(self, file: object, message: str, line: int | None = None, record: object = None) -> None:
        issue = FormatIssue(file=str(file), message=message, line=line,
                            record=None if record is None else str(record))
        if self.strict:
            raise DatasetFormatError(issue)
        self.issues.append(issue)


def fatal(file: object, message: str, line: int | None = None) -> DatasetFormatError:
    """Build the exception for a problem that leaves nothing to read (raise the result)."""
    return DatasetFormatError(FormatIssue(file=str(file), message=message, line=line))
