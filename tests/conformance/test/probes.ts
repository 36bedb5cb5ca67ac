import * as grpc from '@grpc/grpc-js';

/** Calls a unary method of a generated gRPC client by name, as a promise. */
export function unary<T>(client: grpc.Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) =>
    (client as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, r: T) => void) => void>)[
      method
    ]!.call(client, request, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

/** The standard health check, with a one-second deadline: resolves SERVING or throws. */
export function healthy(address: string): Promise<void> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) =>
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      () => Buffer.alloc(0),
      (b: Buffer) => b,
      {},
      { deadline: Date.now() + 1000 },
      (error, response) => {
        client.close();
        if (error) return reject(error);
        // HealthCheckResponse { status: SERVING (1) } is field 1, varint 1.
        expect([...response!]).toEqual([0x08, 0x01]);
        resolve();
      },
    ),
  );
}
