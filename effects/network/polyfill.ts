// libp2p v3 and its noise encrypter call Promise.withResolvers, which Node only gained in 22; we
// run on Node 20. Every entry point (runtime, testing, dev, peer-process) and the libp2p handler
// import this one shim before anything from libp2p is evaluated.
type Resolvers<T> = { promise: Promise<T>; resolve: (v: T | PromiseLike<T>) => void; reject: (e?: unknown) => void }

const PromiseWithResolvers = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }
if (typeof PromiseWithResolvers.withResolvers !== 'function') {
  PromiseWithResolvers.withResolvers = function withResolvers<T>(): Resolvers<T> {
    let resolve!: Resolvers<T>['resolve']
    let reject!: Resolvers<T>['reject']
    const promise = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}
export {}
