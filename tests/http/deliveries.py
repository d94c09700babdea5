"""An alert's delivery as the outbox hands it to a sink: the case view around one alert."""

from __future__ import annotations

from tests.http.conftest import START
from vigil.bots.core.cases import CaseSource, CaseState, CaseView
from vigil.bots.core.models import Alert, AlertStatus, PairKey, WindowMessage
from vigil.bots.core.ports import Delivery


def an_alert(*, revision: int = 1) -> Alert:
    key = PairKey.of(platform="http", space_id="tenant-1", first="adult", second="kid")
    evidence = WindowMessage(
        message_id="m-1",
        channel_id="dm-1",
        thread_id=None,
        author_id="adult",
        text="keep it secret",
        timestamp=START,
        risk=0.9,
        signals=("secrecy",),
    )
    return Alert(
        alert_id=7,
        key=key,
        case_number=3,
        status=AlertStatus.OPEN,
        risk=0.9,
        peak_risk=0.9,
        suspect_id="adult",
        other_id="kid",
        channel_ids=("dm-1",),
        signals=("secrecy",),
        evidence=(evidence,),
        created_at=START,
        updated_at=START,
        revision=revision,
        shadow=False,
        model_name="keyword-test-model test",
    )


def a_delivery(*, revision: int = 1) -> Delivery:
    view = CaseView(
        alert=an_alert(revision=revision),
        state=CaseState.OPEN,
        source=CaseSource.ALERT,
        claimed_by=None,
        dismiss_reason=None,
        hold_until=None,
        audit=(),
        earlier_cases=(),
    )
    return Delivery(case=view, risk_points=(0.9,))
