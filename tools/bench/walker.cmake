# walker_bench: walk throughput vs memory references, whole-graph neighbourhood time, and the
# measurements behind the walk defaults (docs/WALKER.md, docs/BENCHMARKS.md "## walker").
add_executable(walker_bench ${CMAKE_CURRENT_SOURCE_DIR}/walker_bench.cc)
target_link_libraries(walker_bench PRIVATE pgraph_walker pgraph_tools_lib pgraph_storage TBB::tbb)
