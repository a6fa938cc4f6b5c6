"""Why a row of the input was rejected: the keys of report.json's data_quality "bad" counts.

Every rejected row is counted under exactly one reason: the first check it fails, in the order
the checks run (file format, then fields, then references to other files, then duplicates).
Within the fields, the ids come first (their characters, then their presence), then the rest;
ALL lists the reasons in that order.
"""

WRONG_FIELD_COUNT = "wrong_field_count"  # not as many fields as the header has columns
INVALID_UTF8 = "invalid_utf8"  # the line's bytes are not UTF-8
# user_id or item_id holds a control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F,
# "\n" "\r" "\t" NUL among them): one-id-per-line files could not hold it, and Transform drops it.
CONTROL_CHARACTER = "control_character"
MISSING_ID = "missing_id"  # user_id or item_id empty
BAD_TIMESTAMP = "bad_timestamp"  # timestamp not an integer (Unix seconds)
BAD_RATING = "bad_rating"  # rating present but not a finite number
UNKNOWN_USER = "unknown_user"  # interaction whose user_id is not in users.csv
UNKNOWN_ITEM = "unknown_item"  # interaction whose item_id is not in items.csv
DUPLICATE_ID = "duplicate_id"  # a second row for a user_id (users.csv) or item_id (items.csv)
DUPLICATE_ROW = "duplicate_row"  # an exact copy of an earlier interaction row

ALL = (
    WRONG_FIELD_COUNT,
    INVALID_UTF8,
    CONTROL_CHARACTER,
    MISSING_ID,
    BAD_TIMESTAMP,
    BAD_RATING,
    UNKNOWN_USER,
    UNKNOWN_ITEM,
    DUPLICATE_ID,
    DUPLICATE_ROW,
)
