# Prints the source file of every target that Cargo.toml declares explicitly ([lib], [[bin]],
# [[test]], [[bench]], [[example]]), one per line, with Cargo's default when it names no path.
#
# The Dockerfile builds the dependencies against stub sources before copying the real ones,
# so that the dependency layer survives source changes; Cargo refuses a manifest whose
# declared targets have no file, so every one of them gets a stub.
#
#   awk -f deploy/docker/target-stubs.awk Cargo.toml
function flush() {
    if (kind != "") {
        if (path == "") {
            if (kind == "lib") path = "src/lib.rs"
            else if (kind == "bin") path = (name == pkg || name == "") ? "src/main.rs" : "src/bin/" name ".rs"
            else if (kind == "test") path = "tests/" name ".rs"
            else if (kind == "bench") path = "benches/" name ".rs"
            else if (kind == "example") path = "examples/" name ".rs"
        }
        print path
    }
    kind = ""; name = ""; path = ""
}
/^[ \t]*\[/ {
    flush()
    section = $0; gsub(/[][ \t]/, "", section)
    if (section == "lib" || section == "bin" || section == "test" || section == "bench" || section == "example") kind = section
    next
}
/^[ \t]*(name|path)[ \t]*=/ {
    value = $0; sub(/^[^=]*=[ \t]*"/, "", value); sub(/".*$/, "", value)
    key = $0; sub(/^[ \t]*/, "", key); sub(/[ \t]*=.*$/, "", key)
    if (section == "package" && key == "name") pkg = value
    else if (kind != "" && key == "name") name = value
    else if (kind != "" && key == "path") path = value
}
END { flush() }
