"""Personal data, one concept a module.

- ``person``: who a person is (``Person``, the selector; ``Identity``, every identifier they are known by;
  their pseudonym);
- ``rows``: where their rows are (tickets, messages on other tickets, outbox items, dead letters);
- ``scrub``: how one row loses what says who someone is or what they wrote (shared by forget and retention);
- ``export``: everything held on a person, as JSON-ready data;
- ``forget``: pseudonymise a person everywhere, keeping the tickets' statistics;
- ``retention``: which closed tickets have passed the retention period, and their anonymisation.

The job that applies retention in ``helpdesk run`` is ``helpdesk.jobs.retention``.
"""
