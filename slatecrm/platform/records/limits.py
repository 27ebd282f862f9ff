"""The bounds a request must keep, in one place: what each limit is, and why.

Every limit here is refused with a 4xx naming the limit (docs/api.md, "Limits"), never
left to the database, the JSON parser or the interpreter to fail on with a 500. The web
layer imports them too (the JSON body's depth and numbers): this module is the one list,
so that making them configurable (issue 11, section 3) changes one place.
"""

from __future__ import annotations

#: Characters of a text search (`q`): SQLite refuses a LIKE pattern over 50,000 bytes, and
#: a long pattern costs a scan of every searched column at every row on both databases.
SEARCH_TEXT_MAX = 1_000

#: Sort keys of one list (`sort=a,-b,…`): each key adds a term to the ORDER BY and to every
#: keyset condition of the next pages (SQLite refuses an ORDER BY of 2,000 terms).
SORT_KEYS_MAX = 10

#: Nesting of arrays and objects in a JSON body: a record is at most a few levels deep (a
#: money value, a list of choices) and an admin document (an entity with fields and their
#: options) fewer than ten; deeper bodies are refused before anything walks them.
JSON_DEPTH_MAX = 32

#: Characters of one number in a JSON body: no field holds more than 19 digits (64-bit
#: integers; decimals have at most 18), and Python refuses to read an integer of over
#: 4,300 digits.
JSON_NUMBER_LENGTH_MAX = 100
