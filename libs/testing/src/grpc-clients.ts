import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

type Ctor = new (target: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;

function loadService(file: string, name: string, includeDirs: string[] = []): Ctor {
  const definition = protoLoader.loadSync(file, {
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    includeDirs,
  });
  const loaded = grpc.loadPackageDefinition(definition);
  return name.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], loaded) as Ctor;
}

/** Lists the services a server exposes through grpc.reflection.v1 ServerReflection. */
export function reflectionListServices(
  target: string,
  credentials = grpc.credentials.createInsecure(),
): Promise<string[]> {
  const protoFile = path.join(
    path.dirname(require.resolve('@grpc/reflection/package.json')),
    'build/proto/grpc/reflection/v1/reflection.proto',
  );
  const Reflection = loadService(protoFile, 'grpc.reflection.v1.ServerReflection');
  const client = new Reflection(target, credentials) as grpc.Client & Record<string, CallableFunction>;
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 5000 }) as grpc.ClientDuplexStream<
      unknown,
      { list_services_response?: { service: { name: string }[] }; error_response?: { error_message: string } }
    >;
    call.on('data', (response) => {
      call.end();
      client.close();
      if (response.error_response) reject(new Error(response.error_response.error_message));
      else resolve((response.list_services_response?.service ?? []).map((s: { name: string }) => s.name).sort());
    });
    call.on('error', reject);
    call.write({ list_services: '' });
  });
}

/** Asks reflection for the files that define a symbol (and its imports); resolves with how many came back. */
export function reflectionFileContainingSymbol(
  target: string,
  symbol: string,
  credentials = grpc.credentials.createInsecure(),
): Promise<number> {
  const protoFile = path.join(
    path.dirname(require.resolve('@grpc/reflection/package.json')),
    'build/proto/grpc/reflection/v1/reflection.proto',
  );
  const Reflection = loadService(protoFile, 'grpc.reflection.v1.ServerReflection');
  const client = new Reflection(target, credentials) as grpc.Client & Record<string, CallableFunction>;
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 5000 }) as grpc.ClientDuplexStream<
      unknown,
      { file_descriptor_response?: { file_descriptor_proto: Buffer[] }; error_response?: { error_message: string } }
    >;
    call.on('data', (response) => {
      call.end();
      client.close();
      if (response.error_response) reject(new Error(response.error_response.error_message));
      else resolve(response.file_descriptor_response?.file_descriptor_proto.length ?? 0);
    });
    call.on('error', reject);
    call.write({ file_containing_symbol: symbol });
  });
}
