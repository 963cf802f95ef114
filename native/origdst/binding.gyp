{
  "targets": [
    {
      "target_name": "origdst",
      "sources": ["origdst.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
