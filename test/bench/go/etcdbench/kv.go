package main

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/clientv3"
)

// runPut: puts of --value-bytes values, each worker cycling over 1,000 keys of its own.
func runPut(b *bench, w *workload) (*result, error) {
	clients, err := b.connect(w.clients)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	value := b.value(timeZero)
	return b.closedLoop(w, w.clients, func(ctx context.Context, worker, sequence int) error {
		key := fmt.Sprintf("bench/put/%d/%d", worker, sequence%1000)
		_, err := clients[worker%len(clients)].Put(ctx, key, value)
		return err
	}), nil
}

// runTxn: the create-if-absent a lock acquire is made of — If CreateRevision(key) == 0 Then
// Put Else Get — each on a key not seen before, so every txn creates.
func runTxn(b *bench, w *workload) (*result, error) {
	clients, err := b.connect(w.clients)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	value := b.value(timeZero)
	return b.closedLoop(w, w.clients, func(ctx context.Context, worker, sequence int) error {
		key := fmt.Sprintf("bench/txn/%s/%d/%d", b.runID, worker, sequence)
		response, err := clients[worker%len(clients)].Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err == nil && !response.Succeeded {
			err = fmt.Errorf("txn on the fresh key %s took the Else branch", key)
		}
		return err
	}), nil
}

// runRange: a Get of one key that exists, linearizable (ReadIndex) or serializable (local).
func runRange(b *bench, w *workload) (*result, error) {
	clients, err := b.connect(w.clients)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	key := "bench/range"
	ctx, cancel := context.WithTimeout(context.Background(), b.opt.setupTimeout)
	_, err = clients[0].Put(ctx, key, b.value(timeZero))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("seeding %s: %w", key, err)
	}
	var options []clientv3.OpOption
	if w.name == "range-serializable-16" {
		options = append(options, clientv3.WithSerializable())
	}
	return b.closedLoop(w, w.clients, func(ctx context.Context, worker, sequence int) error {
		response, err := clients[worker%len(clients)].Get(ctx, key, options...)
		if err == nil && len(response.Kvs) != 1 {
			err = fmt.Errorf("range of %s returned %d keys", key, len(response.Kvs))
		}
		return err
	}), nil
}
