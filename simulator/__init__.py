"""Local fakes of the four provider APIs, faithful enough to test signing, limits and faults.

Run with ``teledispatch simulate`` / ``python -m simulator`` (see :mod:`simulator.server`).
Choices where the providers' docs are silent, so clients are written against known behaviour:

* Throttling (``--tps N``): at most N *admitted* requests per channel and account in any sliding
  second, counted after authentication; refused requests do not extend the block. NXCloud answers
  HTTP 200 ``code 13008``; USpeedo HTTP 429 (gateway body, ``Retry-After: 1``); Volcengine HTTP
  429 ``FlowLimitExceeded`` (``Retry-After: 1``).
* Per-recipient cap (``--recipient-cap C/WINDOW``): NXCloud fails that item with a message
  ending ``(13007)``, whatever the batch size (``--nx-rate-limit-rate`` refuses whole requests
  with 13007); USpeedo lists it in ``FailedTargetPhones``;
  BatchAppend adds a FailList entry of type ``FREQUENCY_LIMIT``; BindAXN answers ``QuotaExceeded``.
* NXCloud item failures carry the docs' text plus the code, e.g.
  ``"Incorrect phone number format (13005)"``, or the docs' plain text with
  ``--nxcloud-plain-items``; request-level codes have ``data: null``.
* Faults are global with per-channel overrides: every fault option also takes ``CHANNEL=VALUE``
  (``--fail-rate nxcloud.sms=1.0``), and ``POST /_sim/faults`` with a JSON object of the same
  options (``{"channel": "nxcloud.sms", "fail_rate": 1.0}``; no ``channel`` for all;
  ``"clear": true`` drops overrides first) changes them while running; ``GET /_sim/faults``
  reads them and ``POST /_sim/reset`` restores the start-up faults.
* Server faults (``--fail-rate``) answer ``--fail-status`` (503 by default); ``--timeout-rate``
  holds a request ``--timeout-ms`` unprocessed, then closes it unanswered (logged with
  ``code: "timeout"``).
* USpeedo answers in its ``basic`` (``FailedTargetPhones``) or ``sdk`` (``FailContent``,
  ``SuccessCount``, one string ``SessionNo``) shape: ``--uspeedo-shape``.
* Server faults use each channel's own body: NXCloud ``code -1``, USpeedo ``RetCode 215400``
  (with HTTP 503/500), Volcengine ``ServiceUnavailable``/``InternalError``.
* NXCloud status query ``/api/sms/get``: the documented form (``appkey``, ``secretkey`` = the
  account secret, ``date``, ``messageid``) or the same fields signed with the ``multi/mt``
  headers; ``row`` is null for an unknown id, and delivery fields are empty until the DR is due.
* ``/_sim/requests`` also logs the status queries, as channels ``nxcloud.query`` and
  ``uspeedo.receipt``, so count sends by filtering on the four send channels.
"""
