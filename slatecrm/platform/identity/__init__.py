"""Identity: the platform's users and their passwords (issue 12's first brick).

Users are platform data, in the system table `slate_user` (storage/system.py), not an entity
a pack could change or break. `passwords.py` is the password policy and the argon2id hashes;
`users.py` adds, lists, changes, disables and resets users. Nothing here is wired into the web
yet: login, sessions, tokens and roles come later (docs/security.md).
"""
