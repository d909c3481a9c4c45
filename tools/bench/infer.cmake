# infer_bench: layer-by-layer vs naive per-node inference, linear growth, FLOP/s against plain
# GEMMs of the same shapes. Included from tools/bench/CMakeLists.txt:
# include(${CMAKE_CURRENT_SOURCE_DIR}/infer.cmake)
if(TARGET pgraph_infer)
  add_executable(infer_bench ${CMAKE_CURRENT_LIST_DIR}/infer_bench.cc)
  target_link_libraries(infer_bench PRIVATE pgraph_infer pgraph_train pgraph_storage torch TBB::tbb)
endif()

# page_touch_bench: the cost of first-touching fresh memory (plain and huge pages); no deps.
add_executable(page_touch_bench ${CMAKE_CURRENT_LIST_DIR}/page_touch_bench.cc)
