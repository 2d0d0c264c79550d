create database hongbao;
create database hongbao_registry;
