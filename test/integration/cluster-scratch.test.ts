import { it } from 'vitest';
import { startCluster } from '../helpers/cluster.js';
it('timing', async () => {
  let t = Date.now();
  const c = await startCluster({ members: 3, target: 'etcd' });
  console.log("start", Date.now() - t); await new Promise(r => setTimeout(r, 6000)); t = Date.now();
  await c.stop();
  console.log('stop', Date.now() - t);
  for (const m of c.members) console.log(m.name, m.exitInfo, m.logs().split('\n').filter(l => /transfer|leader/i.test(l)).slice(-3).join('\n').slice(0, 1500));
}, 60000);
