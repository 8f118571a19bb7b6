{
  "targets": [
    {
      "target_name": "sipalg_native",
      "sources": ["addon.c", "nfq.c", "nft.c", "ct.c", "csum.c", "tcp.c", "notify.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "libraries": ["-lnetfilter_queue", "-lnftnl", "-lmnl"]
    }
  ]
}
