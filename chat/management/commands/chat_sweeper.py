"""Run the chat sweeper as its own process (optional: every daphne process also sweeps)."""

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from chat import services


class Command(BaseCommand):
    help = "Expire chat requests past their pickup timeout and release first offers, every second."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0)
        parser.add_argument("--once", action="store_true", help="Sweep once and exit.")

    def handle(self, *args, interval, once, **options):
        while True:
            close_old_connections()
            done = services.sweep()
            if done["expired"] or done["released"] or once:
                self.stdout.write(f"expired {len(done['expired'])}, released {len(done['released'])}")
            if once:
                return
            time.sleep(interval)
