"""A small command line over the SDK; tokens travel on stdin/stdout, never in argv.

  python3 -m baton_sdk exchange --broker URL [--resource R]… [--scope OP]… [--ttl 15m]  < subject JWT
  python3 -m baton_sdk attenuate --delegate-to NAME [--resource R]… [--operation OP]… [--ttl 5m]
                                 [--purpose TEXT] [--require-approval OP] [--seal]                               < token
  python3 -m baton_sdk inspect [--broker URL]                                            < token

Prints one JSON object: ``{"token": …}`` / the inspection, or ``{"error": {"code", "message"}}``
with exit status 1.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import BatonError, ExchangeError, attenuate, exchange, fetch_public_keys, inspect


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m baton_sdk")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exchange")
    ex.add_argument("--broker", required=True)
    ex.add_argument("--resource", action="append")
    ex.add_argument("--scope", action="append")
    ex.add_argument("--ttl")
    at = sub.add_parser("attenuate")
    at.add_argument("--delegate-to", required=True)
    at.add_argument("--resource", action="append")
    at.add_argument("--operation", action="append")
    at.add_argument("--ttl")
    at.add_argument("--purpose")
    at.add_argument("--require-approval", action="append")
    at.add_argument("--seal", action="store_true")
    ins = sub.add_parser("inspect")
    ins.add_argument("--broker", help="verify against this broker's published keys")
    args = parser.parse_args(argv)
    text = sys.stdin.read().strip()
    try:
        if args.command == "exchange":
            out = {"token": exchange(args.broker, text, resources=args.resource, scope=args.scope, ttl=args.ttl)}
        elif args.command == "attenuate":
            ttl = int(args.ttl) if args.ttl and args.ttl.isdigit() else args.ttl
            out = {"token": attenuate(text, resources=args.resource, operations=args.operation, ttl=ttl,
                                      delegate_to=args.delegate_to, purpose=args.purpose, seal=args.seal,
                                      require_approval=args.require_approval)}
        else:
            out = inspect(text, fetch_public_keys(args.broker) if args.broker else None)
    except BatonError as err:
        out = {"error": {"code": err.code, "message": err.message}}
    except ExchangeError as err:
        out = {"error": {"code": err.error, "message": err.description, "status": err.status}}
    except TypeError as err:
        out = {"error": {"code": "TypeError", "message": str(err)}}
    print(json.dumps(out))
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
