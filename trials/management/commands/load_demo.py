from django.core.management.base import BaseCommand

from trials.demo import load_demo


class Command(BaseCommand):
    help = "Create the demo trial DEMO with two sites, four subjects, three visits and one user per role (idempotent)."

    def handle(self, *args, **options):
        trial, users = load_demo()
        self.stdout.write(
            self.style.SUCCESS(f"Demo trial {trial.code} is ready. Demo users (email / password / role):")
        )
        for user in users:
            sites = f" ({', '.join(user.sites)})" if user.sites else ""
            self.stdout.write(f"  {user.email:<26} {user.password:<20} {user.role}{sites}")
