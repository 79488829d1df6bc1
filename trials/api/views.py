"""REST API for trial set-up and people. Each view checks access through a selector and calls a service."""

from __future__ import annotations

from dataclasses import asdict

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from ctims.api_schema import conflict, not_found
from ctims.exceptions import NotFound, NotPermitted, ValidationFailed
from ctims.pagination import PagedApi

from .. import selectors, services
from ..access import Actor
from ..inbox import inbox_entries
from ..ingest.browser import upload_open_with_path
from ..ingest.services import upload_as_shown, upload_finish
from ..models import Membership, Upload
from . import serializers as s

CLOSED_TRIAL = "the trial is closed (it takes no new subjects, visits or images)."


def _actor(request) -> Actor:
    """The request's one Actor, so that what it reads of the person's permissions (a trial's access, read by
    `_trial` and reused by the checks after it) is read once per request."""
    actor = getattr(request, "_ctims_actor", None)
    if actor is None or actor.user is not request.user:
        actor = request._ctims_actor = Actor.from_request(request)
    return actor


def _trial(request, code: str, perm: str = "view_trial"):
    return selectors.trial_get(actor=_actor(request), code=code, perm=perm)


def _input(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _paginated(request, view: PagedApi, queryset, out_class):
    return view.paged(request, queryset, lambda page: out_class(page, many=True).data)


class InboxApi(APIView):
    @extend_schema(
        responses={200: s.InboxOut, 404: not_found("`trial` names a trial the caller is not in, or none.")},
        parameters=[
            OpenApiParameter(
                "trial",
                str,
                description="A trial's code: only what waits in that trial (404 for a trial the caller is not in).",
            )
        ],
    )
    def get(self, request):
        """What waits for the person in every trial they are in (a token: in its trial and role only).

        `?trial=CODE` narrows the list to one trial. Entries are derived from the work's state: they leave once
        the person has acted (answered, closed, signed, downloaded).
        """
        actor = _actor(request)
        trial = None
        if request.query_params.get("trial"):
            trial = selectors.trial_get(actor=actor, code=request.query_params["trial"])
        entries = inbox_entries(actor, trial=trial)
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        data = {
            "total": len(entries),
            "overdue": sum(1 for e in entries if e.overdue),
            "counts": counts,
            "results": [asdict(e) | {"label": e.label} for e in entries],
        }
        return Response(s.InboxOut(data).data)


def _trial_out(actor, trial) -> dict:
    """A trial as the actor may read it: whole, or its code and title only for a reader or adjudicator (what their
    worklist shows; the sponsor, protocol, code pattern and settings are not theirs)."""
    if selectors.sees_schedule(actor=actor, trial=trial):
        return s.TrialOut(trial).data
    return s.TrialNameOut({"code": trial.code, "title": trial.title}).data


class TrialListApi(PagedApi):
    @extend_schema(responses=s.or_name_only(s.TrialOut, "TrialOrName", many=True))
    def get(self, request):
        actor = _actor(request)
        return self.paged(request, selectors.trial_list(actor=actor), lambda page: [_trial_out(actor, t) for t in page])

    @extend_schema(request=s.TrialCreateIn, responses={201: s.TrialOut})
    def post(self, request):
        actor = _actor(request)
        if actor.token is not None or not request.user.has_perm("trials.add_trial"):
            raise NotPermitted(_("You may not create trials."))
        trial = services.trial_create(actor=request.user, **_input(s.TrialCreateIn, request.data))
        return Response(s.TrialOut(trial).data, status=status.HTTP_201_CREATED)


class TrialDetailApi(APIView):
    @extend_schema(responses=s.or_name_only(s.TrialOut, "TrialOrName"))
    def get(self, request, code):
        """The trial; a reader or adjudicator gets its code and title only."""
        return Response(_trial_out(_actor(request), _trial(request, code)))

    @extend_schema(request=s.TrialUpdateIn, responses=s.TrialOut)
    def patch(self, request, code):
        trial = _trial(request, code, "manage_trial")
        trial = services.trial_update(actor=request.user, trial=trial, **_input(s.TrialUpdateIn, request.data))
        return Response(s.TrialOut(trial).data)


class TrialSummaryApi(APIView):
    @extend_schema(responses=s.or_name_only(s.TrialSummaryOut, "TrialSummaryOrName"))
    def get(self, request, code):
        """The trial's counts; a reader or adjudicator gets its code and title only (what their worklist shows)."""
        trial = _trial(request, code)
        if not selectors.sees_schedule(actor=_actor(request), trial=trial):
            return Response(s.TrialNameOut({"code": trial.code, "title": trial.title}).data)
        summary = selectors.trial_summary(trial=trial)
        data = {
            "code": trial.code,
            "title": trial.title,
            "sites": summary.sites,
            "subjects": summary.subjects,
            "visits": [{"visit": v.code, "label": v.label, "states": states} for v, states in summary.states_by_visit],
        }
        return Response(s.TrialSummaryOut(data).data)


class SiteListApi(PagedApi):
    @extend_schema(responses=s.SiteOut(many=True))
    def get(self, request, code):
        trial = _trial(request, code)
        sites = selectors.site_list(actor=_actor(request), trial=trial)
        return _paginated(request, self, sites, s.SiteOut)

    @extend_schema(request=s.SiteCreateIn, responses={201: s.SiteOut})
    def post(self, request, code):
        trial = _trial(request, code, "manage_trial")
        site = services.site_create(actor=request.user, trial=trial, **_input(s.SiteCreateIn, request.data))
        return Response(s.SiteOut(site).data, status=status.HTTP_201_CREATED)


class VisitListApi(PagedApi):
    @extend_schema(responses=s.VisitOut(many=True))
    def get(self, request, code):
        trial = _trial(request, code)
        selectors.require_schedule_access(actor=_actor(request), trial=trial)
        return _paginated(request, self, selectors.visit_list(trial=trial), s.VisitOut)

    @extend_schema(request=s.VisitCreateIn, responses={201: s.VisitOut, 409: conflict(CLOSED_TRIAL)})
    def post(self, request, code):
        trial = _trial(request, code, "manage_trial")
        visit = services.visit_create(actor=request.user, trial=trial, **_input(s.VisitCreateIn, request.data))
        return Response(s.VisitOut(visit).data, status=status.HTTP_201_CREATED)


class ProtocolListApi(APIView):
    @extend_schema(responses=s.ProtocolOut(many=True))
    def get(self, request, code, visit_code):
        trial = _trial(request, code)
        selectors.require_schedule_access(actor=_actor(request), trial=trial)
        visit = selectors.visit_get(trial=trial, code=visit_code)
        return Response(s.ProtocolOut(visit.protocols.all(), many=True).data)

    @extend_schema(request=s.ProtocolCreateIn, responses={201: s.ProtocolOut, 409: conflict(CLOSED_TRIAL)})
    def post(self, request, code, visit_code):
        trial = _trial(request, code, "manage_trial")
        visit = selectors.visit_get(trial=trial, code=visit_code)
        protocol = services.protocol_create(actor=request.user, visit=visit, **_input(s.ProtocolCreateIn, request.data))
        return Response(s.ProtocolOut(protocol).data, status=status.HTTP_201_CREATED)


class SubjectListApi(PagedApi):
    @extend_schema(responses=s.SubjectOut(many=True))
    def get(self, request, code):
        actor = _actor(request)
        trial = _trial(request, code)
        selectors.require_subject_access(actor=actor, trial=trial)
        subjects = selectors.subject_list(actor=actor, trial=trial).prefetch_related("timepoints__visit")
        return _paginated(request, self, subjects, s.SubjectOut)

    @extend_schema(request=s.SubjectEnrollIn, responses={201: s.SubjectOut, 409: conflict(CLOSED_TRIAL)})
    def post(self, request, code):
        actor = _actor(request)
        trial = _trial(request, code, "manage_trial")
        data = _input(s.SubjectEnrollIn, request.data)
        site = selectors.enrollable_sites(actor=actor, trial=trial).filter(code=data["site"].upper()).first()
        if site is None:
            raise ValidationFailed(
                _("There is no site %(code)s in this trial.") % {"code": data["site"]},
                fields={"site": [_("Unknown site.")]},
            )
        subject = services.subject_enroll(actor=request.user, site=site)
        return Response(s.SubjectOut(subject).data, status=status.HTTP_201_CREATED)


class SubjectDetailApi(APIView):
    @extend_schema(responses=s.SubjectOut)
    def get(self, request, code, subject_code):
        actor = _actor(request)
        trial = _trial(request, code)
        selectors.require_subject_access(actor=actor, trial=trial)
        subject = selectors.subject_get(actor=actor, trial=trial, code=subject_code)
        return Response(s.SubjectOut(subject).data)


class MembershipListApi(PagedApi):
    @extend_schema(responses=s.MembershipOut(many=True))
    def get(self, request, code):
        trial = _trial(request, code, "manage_trial")
        return _paginated(request, self, selectors.membership_list(trial=trial), s.MembershipOut)

    @extend_schema(request=s.MembershipGrantIn, responses={202: s.InvitationOut})
    def post(self, request, code):
        """Invite a person by email to a role: 202, the same answer whether or not they have an account; the role
        is theirs once they accept from the emailed link."""
        trial = _trial(request, code, "manage_trial")
        data = _input(s.MembershipGrantIn, request.data)
        codes = {c.upper() for c in data["sites"]}
        sites = list(trial.sites.filter(code__in=codes))
        if len(sites) != len(codes):
            missing = sorted(codes - {site.code for site in sites})
            raise ValidationFailed(
                _("These sites are not part of %(trial)s: %(codes)s.")
                % {"trial": trial.code, "codes": ", ".join(missing)},
                fields={"sites": [_("Choose sites of this trial.")]},
            )
        invitation, _secret = services.invitation_create(
            actor=request.user,
            trial=trial,
            email=data["email"],
            full_name=data["full_name"],
            role=data["role"],
            sites=sites,
        )
        return Response(s.InvitationOut(invitation).data, status=status.HTTP_202_ACCEPTED)


class MembershipDetailApi(APIView):
    @extend_schema(responses={204: None, 409: conflict("the trial would be left without an active trial admin.")})
    def delete(self, request, code, pk):
        trial = _trial(request, code, "manage_trial")
        services.membership_revoke(actor=request.user, membership=selectors.membership_get(trial=trial, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListApi(APIView):
    @extend_schema(responses=s.TokenOut(many=True))
    def get(self, request, code):
        trial = _trial(request, code)
        return Response(s.TokenOut(selectors.token_list(actor=_actor(request), trial=trial), many=True).data)

    @extend_schema(request=s.TokenCreateIn, responses={201: s.TokenCreatedOut})
    def post(self, request, code):
        actor = _actor(request)
        if actor.token is not None:
            raise NotPermitted(_("Tokens are issued from a logged-in session, not with another token."))
        trial = _trial(request, code)
        data = _input(s.TokenCreateIn, request.data)
        membership = Membership.objects.filter(user=request.user, trial=trial, role=data["role"]).first()
        if membership is None:
            raise ValidationFailed(
                _("You do not hold that role in this trial."), fields={"role": [_("Not one of your roles.")]}
            )
        token, key = services.api_token_create(actor=request.user, membership=membership, name=data["name"])
        payload = s.TokenOut(token).data | {"key": key}
        return Response(payload, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, code, pk):
        trial = _trial(request, code)
        token = selectors.token_list(actor=_actor(request), trial=trial).filter(pk=pk).first()
        if token is None:
            raise NotFound(_("No such token."))
        services.api_token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditListApi(PagedApi):
    @extend_schema(parameters=[s.AuditFilterIn], responses=s.AuditEventOut(many=True))
    def get(self, request, code):
        trial = _trial(request, code, "view_audit")
        filters = selectors.AuditFilters(**_input(s.AuditFilterIn, request.query_params))
        return _paginated(request, self, selectors.audit_event_list(trial=trial, filters=filters), s.AuditEventOut)


def _upload_out(upload: Upload, *, items_from: int | None = None) -> dict:
    """The upload's answer. `upload` comes with its visit and its subject's trial (`selectors.upload_get`'s,
    `upload_finish`'s or `upload_as_shown`'s): the serializer reads no row of them again, only the files' counts
    and the files."""
    return s.UploadOut(upload, context={"items_from": items_from}).data


class UploadOpenApi(APIView):
    """Open an upload session for a subject's visit, or resume the caller's open one."""

    @extend_schema(
        request=s.UploadOpenIn,
        responses={
            201: s.UploadOut,
            409: conflict(
                "the trial is closed, does not take this de-identification path, or the visit can no longer take "
                "images."
            ),
        },
    )
    def post(self, request, code, subject_code, visit_code):
        actor = _actor(request)
        trial = _trial(request, code)
        timepoint = selectors.upload_timepoint_get(
            actor=actor, trial=trial, subject_code=subject_code, visit_code=visit_code
        )
        browser = _input(s.UploadOpenIn, request.data)["deid_path"] == Upload.DeidPath.BROWSER
        upload = upload_open_with_path(actor=request.user, timepoint=timepoint, browser=browser)
        return Response(_upload_out(upload_as_shown(upload.pk)), status=status.HTTP_201_CREATED)


class UploadDetailApi(APIView):
    """An upload's progress: each received file by its SHA-256, its state and the reason of a rejection.

    With `items_from` (the `cursor` of the previous answer) only the files not settled then, and any received
    since, are listed: a page polling while it sends no longer gets every file each time. A file is settled
    once accepted, a duplicate or rejected, and stays so; the complete list comes without `items_from`, and
    always once the upload is complete.
    """

    @extend_schema(parameters=[s.UploadStatusIn], responses=s.UploadOut)
    def get(self, request, code, pk):
        trial = _trial(request, code)
        items_from = _input(s.UploadStatusIn, request.query_params).get("items_from")
        upload = selectors.upload_get(actor=_actor(request), trial=trial, pk=pk)
        return Response(_upload_out(upload, items_from=items_from))


class UploadFinishApi(APIView):
    """The client has sent every file; the upload completes when the last one is processed."""

    @extend_schema(
        request=None,
        responses={200: s.UploadOut, 409: conflict("the upload had no file and its visit moved on meanwhile.")},
    )
    def post(self, request, code, pk):
        trial = _trial(request, code)
        upload = selectors.upload_get(actor=_actor(request), trial=trial, pk=pk, write=True)
        # The service's own last read, with the visit as it left it, is the answer.
        return Response(_upload_out(upload_finish(actor=request.user, upload=upload)))
