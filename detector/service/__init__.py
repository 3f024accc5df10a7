"""The Kafka service: the core run as a faust-streaming application.

Faust brings partitions, consumer groups and changelog-backed tables; the core
(``detector.engine``) knows nothing of Kafka. One engine runs per assigned
partition, so every partition keeps its own watermark and a slow partition never
makes a fast one's events late.
"""
