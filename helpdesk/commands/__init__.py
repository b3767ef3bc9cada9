"""`helpdesk` sub-commands: each module has register(subparsers) and sets a `handler` default."""
