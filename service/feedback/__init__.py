"""Ratings of answers (POST /feedback), kept in SQL so that thumbs-down become eval drafts
(`citeqa feedback export`). Imports no API code: the CLI reads the same store."""
