"""Hooks for the contract fuzz run of .ci/run (loaded through SCHEMATHESIS_HOOKS).

Every check runs; these hooks only keep the fuzzer from counting, as findings, answers the API
contract requires. Each is narrow, and the run's summary counts what they drop.
"""

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

# positive_data_acceptance expects a schema-valid request to be accepted, or refused with a status
# that depends on the state (401, 403, 404, 409, 429). These two refusals depend on the state too,
# but the contract makes them 422:
# - IDEMPOTENCY_KEY_REUSED: the fuzzer sends one generated Idempotency-Key value with several
#   bodies and on several routes; the first request owns the key, the others are refused;
# - AMOUNT_MISMATCH: a confirm whose amount_krw differs from the amount an earlier request stored
#   for that payment.
# Every other refusal of schema-valid data (a 400 or a 422 VALIDATION_ERROR) is still a finding.
STATE_DEPENDENT_422 = {"IDEMPOTENCY_KEY_REUSED", "AMOUNT_MISMATCH"}

# A tax-free amount is bounded by other values, which JSON Schema cannot compare: on a payment by
# its own `amount_krw`, on a refund by what is left of the payment's tax-free amount and by the
# refund (both documented on the fields). Those refusals are 422 VALIDATION_ERROR whose detail
# names the field; any other VALIDATION_ERROR is still a finding.
TAX_FREE_DETAIL = "tax_free_amount_krw: "
# A reconciliation run's date must not be after today in Korea: the day the request is made decides,
# which no schema can say, so a well-formed later date is refused 422 VALIDATION_ERROR ("after
# today"). Only that refusal, only on that route.
LATER_DAY = ("/reconciliation/runs", "is after today in Korea")
# A consent's `consented_at` must not be in the future: the moment of the request decides, which no
# schema can say, so a well-formed later time is refused 422 VALIDATION_ERROR. Only that refusal,
# only on that route.
FUTURE_CONSENT = ("/billing/consents", "consented_at: must not be in the future")


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if isinstance(failure, RejectedPositiveData) and response.status_code == 422:
        try:
            problem = response.json()
        except Exception:
            problem = {}
        code = problem.get("code")
        detail = str(problem.get("detail") or "")
        if code == "VALIDATION_ERROR" and detail.startswith(TAX_FREE_DETAIL):
            return False
        for path, refusal in (LATER_DAY, FUTURE_CONSENT):
            if code == "VALIDATION_ERROR" and case.path == path and refusal in detail:
                return False
        return code not in STATE_DEPENDENT_422
    return True


def whole_floats_as_integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_floats_as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_floats_as_integers(item) for item in value]
    return value


# JSON Schema cannot tell 15000 from 15000.0 (both are "integer"), and the fuzzer sends both
# spellings; the API takes amounts only as JSON integers, as its description says, and refuses
# 15000.0 with 422 VALIDATION_ERROR (tests/api/inputs.rs). Bodies are sent with the integer
# spelling; a fraction (15000.5) is left as it is and still has to be refused.
@schemathesis.hook
def map_body(context, body):
    return whole_floats_as_integers(body)
