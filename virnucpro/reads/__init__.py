"""Reads to frames: FASTA parsing, chunking, six-frame translation, the ledger.

Everything here reproduces the original tool's preparation files byte for byte
(SPEC §1–2) and accounts for every read and chunk in the ledger.
"""
