/**
 * Memoizes a function of an object by the object's identity. The agent's
 * watch cache, validation cache and spec memo hand an unchanged VIP the same
 * object sync after sync, so a sync computes only for what changed; entries
 * go with their objects (a WeakMap), so nothing here needs a bound.
 * Only for pure functions of objects nobody mutates.
 */
export function memoByObject<K extends object, V>(compute: (key: K) => V): (key: K) => V {
  const known = new WeakMap<K, V>();
  return (key) => {
    if (known.has(key)) return known.get(key)!;
    const value = compute(key);
    known.set(key, value);
    return value;
  };
}
