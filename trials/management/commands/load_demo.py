from django.core.management.base import BaseCommand

from trials.demo import SUBJECTS_PER_SITE, demo_authenticators, load_demo


class Command(BaseCommand):
    help = "Create the demo trial DEMO with two sites, four subjects, three visits and one user per role (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--subjects-per-site",
            type=int,
            default=SUBJECTS_PER_SITE,
            help=f"enrol subjects until each site has this many (default {SUBJECTS_PER_SITE})",
        )

    def handle(self, *args, **options):
        trial, users = load_demo(subjects_per_site=options["subjects_per_site"])
        self.stdout.write(
            self.style.SUCCESS(f"Demo trial {trial.code} is ready. Demo users (email / password / role):")
        )
        for user in users:
            sites = f" ({', '.join(user.sites)})" if user.sites else ""
            role = "operator (the Django admin at /operator/)" if user.role == "operator" else user.role
            self.stdout.write(f"  {user.email:<26} {user.password:<20} {role}{sites}")
        secrets = demo_authenticators()
        self.stdout.write(
            "Two-factor sign-in: these users enter a one-time code after the password. Add the secret to an "
            "authenticator app, or print the current code with `python manage.py two_factor_code EMAIL`:"
        )
        for email, secret in secrets.items():
            self.stdout.write(f"  {email:<26} {secret}")
