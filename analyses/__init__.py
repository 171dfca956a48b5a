"""The science: pure functions (model, data, options) -> Result. Import submodules directly."""
