"""A gRPC upstream for the proxyless-client test: answers /bootes.test.Echo/Say
with "<name>: <request>". No generated code: bytes in, bytes out."""

import argparse
import sys
from concurrent import futures

import grpc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    def say(request: bytes, context) -> bytes:
        return args.name.encode() + b": " + request

    handler = grpc.method_handlers_generic_handler(
        "bootes.test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The test reads the port from this line.
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
