from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trials", "0024_upload_visit_state_before"),
    ]

    operations = [
        migrations.AddField(
            model_name="upload",
            name="idle_closed",
            field=models.BooleanField(db_default=False, default=False),
        ),
    ]
