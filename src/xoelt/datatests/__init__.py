"""Data tests: declared in YAML (:mod:`xoelt.config.datatests`), built as Snowflake SQL
(:mod:`xoelt.datatests.sql`), run after silver and gold and by ``xoelt test``
(:mod:`xoelt.datatests.runner`), kept in ``XOELT.TEST_RESULTS``.
"""
