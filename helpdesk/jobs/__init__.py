"""The periodic jobs of `helpdesk run`: each checks on start and then every so often, until shutdown.

- ``retention``: anonymise what has passed HELPDESK_RETENTION_MONTHS;
- ``monthly_report``: queue last month's report for staff once it is due.

Each job only decides when to run; what it does lives with its concept (``usecases/personal_data/``,
``reports/``). The delivery worker, the other long-running loop, is ``helpdesk/worker.py``.
"""
