"""The use cases that span partitions: reserve, confirm, release, extend, fulfil, source,
reassign, and carrying decided steps to every part."""
