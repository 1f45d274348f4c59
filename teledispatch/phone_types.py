"""A number's type (mobile, fixed line, ...) as ``phonenumbers.number_type`` finds it, faster.

``number_type`` (and so ``is_valid_number``: a number is valid exactly when its type is not
UNKNOWN) picks the region of a shared country code, then tries each type's pattern of that
region in a fixed order. :class:`CodeTypes` does the same steps over the same metadata, with
the patterns compiled once and the descriptions that cannot match a length dropped up front.
It takes the national significant number as a string of ASCII digits; the differential tests
in tests/unit/test_phone_fast_path.py hold it to ``phonenumbers``' answer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc, PhoneNumberType

#: ``_number_type_helper``'s order: the first description that matches names the type.
_SPECIAL_ORDER = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


@dataclass(frozen=True, slots=True)
class _Desc:
    """A number description: the lengths it allows (empty: any) and its pattern."""

    lengths: frozenset[int]
    pattern: re.Pattern[str]

    @staticmethod
    def of(desc: PhoneNumberDesc | None) -> _Desc | None:
        """None for a description that never matches (absent, or an empty pattern)."""
        if desc is None or not desc.national_number_pattern:
            return None
        return _Desc(
            frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)
        )

    def allows(self, length: int) -> bool:
        return not self.lengths or length in self.lengths


@dataclass(frozen=True, slots=True)
class _LengthTypes:
    """One region's descriptions that can match a national number of one length, in order."""

    general: re.Pattern[str] | None
    #: (type, pattern) for premium rate ... voicemail, then fixed line.
    ordered: tuple[tuple[int, re.Pattern[str]], ...]
    mobile: re.Pattern[str] | None
    same_mobile_and_fixed_line: bool

    def number_type(self, national: str) -> int:
        if self.general is None or self.general.fullmatch(national) is None:
            return PhoneNumberType.UNKNOWN
        for kind, pattern in self.ordered:
            if pattern.fullmatch(national) is not None:
                if kind != PhoneNumberType.FIXED_LINE:
                    return kind
                if self.same_mobile_and_fixed_line or (
                    self.mobile is not None and self.mobile.fullmatch(national) is not None
                ):
                    return PhoneNumberType.FIXED_LINE_OR_MOBILE
                return PhoneNumberType.FIXED_LINE
        if (
            not self.same_mobile_and_fixed_line
            and self.mobile is not None
            and self.mobile.fullmatch(national) is not None
        ):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN


class _RegionTypes:
    """One region's metadata, split by national number length on first use."""

    __slots__ = ("_by_length", "_general", "_mobile", "_ordered", "_same", "leading_digits")

    def __init__(self, metadata: PhoneMetadata) -> None:
        self.leading_digits = (
            re.compile(metadata.leading_digits) if metadata.leading_digits else None
        )
        self._general = _Desc.of(metadata.general_desc)
        self._ordered = [
            (kind, desc)
            for kind, desc in (
                *((kind, _Desc.of(getattr(metadata, name))) for name, kind in _SPECIAL_ORDER),
                (PhoneNumberType.FIXED_LINE, _Desc.of(metadata.fixed_line)),
            )
            if desc is not None
        ]
        self._mobile = _Desc.of(metadata.mobile)
        self._same = bool(metadata.same_mobile_and_fixed_line_pattern)
        self._by_length: dict[int, _LengthTypes] = {}

    def number_type(self, national: str) -> int:
        length = len(national)
        table = self._by_length.get(length)
        if table is None:
            table = self._by_length[length] = self._for_length(length)
        return table.number_type(national)

    def _for_length(self, length: int) -> _LengthTypes:
        general, mobile = self._general, self._mobile
        return _LengthTypes(
            general=general.pattern if general is not None and general.allows(length) else None,
            ordered=tuple((kind, d.pattern) for kind, d in self._ordered if d.allows(length)),
            mobile=mobile.pattern if mobile is not None and mobile.allows(length) else None,
            same_mobile_and_fixed_line=self._same,
        )


@dataclass(frozen=True, slots=True)
class CodeTypes:
    """Every region of one country calling code, in ``phonenumbers``' order."""

    regions: tuple[_RegionTypes, ...]
    #: One region (or non-geographic): no choosing, its metadata decides.
    single: bool

    @staticmethod
    @functools.cache
    def for_code(country_code: int) -> CodeTypes:
        codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
        if len(codes) == 1:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, codes[0])
            regions = (_RegionTypes(metadata),) if metadata is not None else ()
            return CodeTypes(regions, True)
        found = (PhoneMetadata.metadata_for_region(code, None) for code in codes)
        return CodeTypes(tuple(_RegionTypes(m) for m in found if m is not None), False)

    def number_type(self, national: str) -> int:
        """``phonenumbers.number_type`` of the number with this code and national number."""
        if self.single:
            return (
                self.regions[0].number_type(national) if self.regions else PhoneNumberType.UNKNOWN
            )
        # region_code_for_number: the first region whose leading digits match the start, or
        # (for a region without them) that gives the number a type.
        for region in self.regions:
            if region.leading_digits is not None:
                if region.leading_digits.match(national) is not None:
                    return region.number_type(national)
            else:
                kind = region.number_type(national)
                if kind != PhoneNumberType.UNKNOWN:
                    return kind
        return PhoneNumberType.UNKNOWN
