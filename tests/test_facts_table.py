"""views.tables.facts_table: notebook 00's environment table, a helper instead of hand-built HTML."""

from __future__ import annotations


def test_facts_table_shows_each_fact_in_text_and_html():
    from workqueue_lab.views.tables import facts_table

    table = facts_table({"RabbitMQ": "3.10.8", "management UI": None, "AMQP URL": "amqp://u:***@h/<v>"})
    assert table.column("what") == ["RabbitMQ", "management UI", "AMQP URL"]
    assert table.column("value") == ["3.10.8", "", "amqp://u:***@h/<v>"]
    assert "3.10.8" in str(table) and "&lt;v&gt;" in table._repr_html_()
