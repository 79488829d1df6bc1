"""The Transfers page: sponsors and trial admins request data transfers, watch them build and download them.

Anyone else gets 404 for the trial, as on the read results page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ctims.exceptions import CTIMSError, InvalidState, NotFound
from ctims.pagination import page_of
from trials.forms import add_service_errors
from trials.views._common import _posted, _trial_page

from . import transfers
from .forms import DeliverySettingsForm, TransferRequestForm
from .models import Transfer
from .views import results_trial_or_404, time_zone_label

BUSY = (Transfer.State.QUEUED, Transfer.State.BUILDING)
TRANSFERS_PAGE_SIZE = 25  # transfers per page, newest first


@login_required
def transfers_page(request, code: str):
    """The trial's transfers (newest first) with their progress, and the form to request one."""
    actor, trial = results_trial_or_404(request, code)
    form = TransferRequestForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            transfer = transfers.transfer_request(actor=request.user, trial=trial, cutoff=form.cleaned_data["cutoff"])
        except CTIMSError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Transfer %(n)s is requested: it builds now.") % {"n": transfer.number})
            return redirect("read-transfers", code=trial.code)
    page = page_of(request, transfers.transfers_list(trial), TRANSFERS_PAGE_SIZE)
    manages = actor.has_trial_perm(trial, "manage_trial")
    settings = transfers.delivery_settings(trial)
    context = {
        "form": form,
        "page": page,
        "rows": [
            {
                "transfer": t,
                "step": transfers.step_label(t),
                "busy": t.state in BUSY,
                "changed": any(c["status"] != "unchanged" for c in t.changes.values()),
            }
            for t in page.object_list
        ],
        # A build on another page is followed too: the page refreshes until every build is done.
        "busy": Transfer.objects.filter(trial=trial, state__in=BUSY).exists(),
        "settings_form": DeliverySettingsForm(instance=settings) if manages else None,
        # What the scan dates of a transfer requested now are: real dates, study days only, or none at all.
        "dates": transfers.dates_delivered(trial, settings),
        "time_zone": time_zone_label(),
    }
    response = _trial_page(request, actor, trial, "reads/transfers.html", "read-transfers", context)
    if context["busy"]:
        response["Refresh"] = "2"  # the page follows a build until it is done
    return response


@login_required
@require_POST
def delivery_settings(request, code: str):
    """The trial admin's choice: whether transfers carry real scan dates."""
    actor, trial = results_trial_or_404(request, code)
    if not actor.has_trial_perm(trial, "manage_trial"):
        raise Http404(_("No such trial."))
    form = DeliverySettingsForm(request.POST, instance=transfers.delivery_settings(trial))
    if form.is_valid():
        transfers.delivery_settings_set(actor=request.user, trial=trial, real_dates=form.cleaned_data["real_dates"])
        messages.success(request, _("The delivery settings were saved."))
    return redirect("read-transfers", code=trial.code)


@login_required
def transfer_download(request, code: str, number: int):
    """A built transfer's zip; every download is audited."""
    _actor, trial = results_trial_or_404(request, code)
    try:
        transfer = transfers.transfer_get(trial=trial, number=number)
        handle = transfers.transfer_open(actor=request.user, transfer=transfer)
    except (NotFound, InvalidState):
        raise Http404(_("No such transfer.")) from None
    return transfer_response(transfer, handle)


def transfer_response(transfer: Transfer, handle) -> FileResponse:
    response = FileResponse(handle, as_attachment=True, filename=transfer.filename, content_type="application/zip")
    response["X-Content-SHA256"] = transfer.sha256
    return response
