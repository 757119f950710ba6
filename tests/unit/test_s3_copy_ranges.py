"""The byte ranges of a multipart copy: S3's 5 MiB minimum, 10,000 parts, 5 GB parts."""

from __future__ import annotations

import itertools

import pytest

from xoelt.errors import StorageError
from xoelt.storage.s3 import FIVE_GB, MAX_PARTS, MIB, MIN_PART, copy_ranges


def covers(ranges: list[tuple[int, int]], size: int) -> bool:
    """The ranges are contiguous, in order, and cover exactly ``size`` bytes."""
    return (
        ranges[0][0] == 0
        and ranges[-1][1] == size - 1
        and all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    )


def test_parts_of_the_configured_size_and_a_shorter_last_one() -> None:
    ranges = copy_ranges(23 * MIB + 5, 5 * MIB)
    assert len(ranges) == 5 and covers(ranges, 23 * MIB + 5)
    assert {last - first + 1 for first, last in ranges[:-1]} == {5 * MIB}
    assert ranges[-1] == (20 * MIB, 23 * MIB + 4)


def test_an_exact_multiple_has_no_empty_last_part() -> None:
    ranges = copy_ranges(1024**3, 128 * MIB)
    assert len(ranges) == 8 and covers(ranges, 1024**3)
    assert ranges[-1] == (7 * 128 * MIB, 1024**3 - 1)


def test_the_part_size_grows_to_whole_mib_past_ten_thousand_parts() -> None:
    size = 2 * 1024**4  # 2 TiB in 128 MiB parts would be 16,384 parts
    ranges = copy_ranges(size, 128 * MIB)
    assert len(ranges) <= MAX_PARTS and covers(ranges, size)
    part = ranges[0][1] + 1
    assert part % MIB == 0 and part > 128 * MIB and part <= FIVE_GB


def test_a_part_size_below_the_s3_minimum_is_raised_to_it() -> None:
    assert copy_ranges(12 * MIB, MIB)[0] == (0, MIN_PART - 1)


def test_an_object_too_big_for_s3_is_refused() -> None:
    with pytest.raises(StorageError, match="more than 10,000 x 5 GB"):
        copy_ranges(MAX_PARTS * FIVE_GB + 1, 128 * MIB)


def test_an_object_one_part_would_hold_is_copied_as_two_halves() -> None:
    """Above the threshold a copy runs in parallel: a 300 MiB object with 512 MiB parts is two
    150 MiB halves, a 1 GiB one two 512 MiB parts, never a one-part multipart upload."""
    assert copy_ranges(300 * MIB, 512 * MIB) == [(0, 150 * MIB - 1), (150 * MIB, 300 * MIB - 1)]
    ranges = copy_ranges(1024**3, 512 * MIB)
    assert len(ranges) == 2 and covers(ranges, 1024**3)
    assert len(copy_ranges(5 * 1024**3, 512 * MIB)) == 10
    odd = 2 * MIN_PART + 1
    assert copy_ranges(odd, 8 * MIN_PART) == [(0, MIN_PART), (MIN_PART + 1, odd - 1)]


def test_halves_are_not_made_below_the_s3_minimum() -> None:
    """Two parts of an object under 10 MiB would break S3's 5 MiB minimum: one part it is."""
    assert copy_ranges(9 * MIB, 512 * MIB) == [(0, 9 * MIB - 1)]
