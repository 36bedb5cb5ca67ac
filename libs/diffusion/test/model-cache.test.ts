import { ModelCache, ModelCacheFullError } from '../src';

/** A cache of named fake models that records loads and evictions. */
function cache(maxModels: number) {
  const events: string[] = [];
  const models = new ModelCache<string>({
    maxModels,
    load: async (key) => {
      events.push(`load ${key}`);
      return `model ${key}`;
    },
    evict: async (key, model) => {
      events.push(`evict ${key} (${model})`);
    },
  });
  return { models, events };
}

describe('ModelCache', () => {
  it('loads each model once, and evicts the least recently used idle one to make room', async () => {
    const { models, events } = cache(2);
    (await models.acquire('a')).release();
    (await models.acquire('b')).release();
    const a = await models.acquire('a');
    expect(a.model).toBe('model a');
    a.release();
    (await models.acquire('c')).release();
    expect(events).toEqual(['load a', 'load b', 'evict b (model b)', 'load c']);
    expect(models.keys()).toEqual(['a', 'c']);
  });

  it('never evicts a model in use; when all are in use another is refused', async () => {
    const { models, events } = cache(2);
    const a = await models.acquire('a');
    const b = await models.acquire('b');
    await expect(models.acquire('c')).rejects.toThrow(ModelCacheFullError);
    b.release();
    b.release(); // a second release is a no-op, not a negative count
    const c = await models.acquire('c');
    expect(events).toEqual(['load a', 'load b', 'evict b (model b)', 'load c']);
    expect(models.keys().sort()).toEqual(['a', 'c']);
    a.release();
    c.release();
  });

  it('holds no more than maxModels even when acquires race', async () => {
    const { models } = cache(1);
    (await models.acquire('a')).release();
    const results = await Promise.allSettled([models.acquire('b'), models.acquire('c')]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(models.keys()).toHaveLength(1);
  });

  it('forgets a model that failed to load', async () => {
    let fail = true;
    const models = new ModelCache<string>({
      maxModels: 1,
      load: async () => (fail ? Promise.reject(new Error('no files')) : 'ok'),
      evict: async () => undefined,
    });
    await expect(models.acquire('a')).rejects.toThrow('no files');
    fail = false;
    expect(models.keys()).toEqual([]);
    expect((await models.acquire('a')).model).toBe('ok');
  });
});
