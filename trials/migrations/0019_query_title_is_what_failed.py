"""A query's title keeps what QC failed (series numbers and descriptions) without the words "QC failed: ", which
were stored in the language of the reviewer who failed it; pages now head it in their reader's language."""

from django.db import migrations, models

# The heading's words as they were stored, in every language the catalogue had when they were.
PREFIXES = ("QC failed: ", "QC 불합격: ")
WHOLE_VISIT = ("the visit", "방문 전체", "이 방문")


def strip_prefix(apps, schema_editor):
    Query = apps.get_model("trials", "Query")
    for query in Query.objects.filter(title__startswith="QC "):
        for prefix in PREFIXES:
            if query.title.startswith(prefix):
                names = query.title[len(prefix) :]
                query.title = "" if names in WHOLE_VISIT else names
                query.save(update_fields=["title"])
                break


def restore_prefix(apps, schema_editor):
    Query = apps.get_model("trials", "Query")
    for query in Query.objects.all():
        query.title = ("QC failed: " + (query.title or "the visit"))[:200]
        query.save(update_fields=["title"])


class Migration(migrations.Migration):
    dependencies = [
        ("trials", "0018_uploaditem_reason_text"),
    ]

    operations = [
        migrations.AlterField(
            model_name="query",
            name="title",
            field=models.CharField(blank=True, max_length=200, verbose_name="title"),
        ),
        migrations.RunPython(strip_prefix, restore_prefix),
    ]
