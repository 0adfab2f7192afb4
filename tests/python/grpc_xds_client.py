"""A proxyless gRPC client (grpcio's xds:/// resolver) for the end-to-end
test: resolves TARGET through the xDS server named in GRPC_XDS_BOOTSTRAP,
calls /bootes.test.Echo/Say until the answer starts with --expect or the
deadline passes, and prints the answer. With --expect-failure, calls once
(without waiting for the channel to be ready) and prints the status code,
its details and the seconds it took; succeeds if the details contain the
text given."""

import argparse
import sys
import time

import grpc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--expect")
    parser.add_argument("--expect-failure")
    parser.add_argument("--deadline", type=float, default=60.0)
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.target)
    say = channel.unary_unary("/bootes.test.Echo/Say")
    start = time.monotonic()
    end = start + args.deadline
    if args.expect_failure is not None:
        try:
            answer = say(b"ping", timeout=args.deadline).decode()
            print(f"answered {answer!r}", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            took = time.monotonic() - start
            print(f"{e.code()} after {took:.2f}s: {e.details()}", flush=True)
            return 0 if args.expect_failure in (e.details() or "") else 1
    last = "no attempt"
    while time.monotonic() < end:
        try:
            answer = say(b"ping", timeout=5).decode()
            if answer.startswith(args.expect):
                print(answer, flush=True)
                return 0
            last = f"answer {answer!r}"
        except grpc.RpcError as e:  # not resolved yet, or no endpoint yet
            last = f"{e.code()}: {e.details()}"
        time.sleep(0.2)
    print(f"no answer from {args.expect} before the deadline; last: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
