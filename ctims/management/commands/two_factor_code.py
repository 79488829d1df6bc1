from django.core.management.base import BaseCommand, CommandError

from ctims.models import User
from ctims.two_factor import authenticator, code_now


class Command(BaseCommand):
    help = "Print the one-time code a person's authenticator app shows now (for walking the demo without a phone)."

    def add_arguments(self, parser):
        parser.add_argument("email")

    def handle(self, *args, email, **options):
        user = User.objects.filter(email=email.lower()).first()
        device = authenticator(user) if user is not None else None
        if device is None:
            raise CommandError(f"{email} has no authenticator.")
        self.stdout.write(code_now(device))
