"""Uploaded files: where their bytes are kept (a storage backend), what is known of each (the
`slate_file` table), and how a record's file fields claim and release them.

- backends.py: the `FileBackend` protocol (put / open / delete / exists by key), the local
  directory backend, and the choice of backend from `SLATECRM_FILE_STORAGE` (a plugin may
  answer for another scheme: the `slatecrm_file_storage` hook).
- detect.py: a file's content type from its content (puremagic), images checked with Pillow.
- store.py: upload, read, thumbnails, and deleting what committed writes released.
- attachments.py: the write pipeline's hooks that claim, attach and release files.
"""
