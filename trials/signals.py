"""What the trials app announces to apps built on it (it imports none of them).

Receivers only enqueue work; the work itself lives in the receiving app's services.
"""

from django.dispatch import Signal

# Sent after the transaction that made a timepoint ready for read commits; argument: timepoint_id.
timepoint_ready = Signal()
